#!/usr/bin/env python3
"""Writes a large inventory and playbook for the planning benchmark.

usage: gen-plan-fleet.py DIR HOSTS TASKS
"""
import os
import sys

out, hosts, tasks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
roles = ["web", "api", "worker", "db"]
with open(os.path.join(out, "inventory.yml"), "w") as f:
    f.write("vars:\n  release: \"2026.11.3\"\n  app_dir: /srv/app\ndefaults: {user: ops}\nhosts:\n")
    for i in range(hosts):
        role = roles[i % len(roles)]
        f.write(
            f"  host-{i:05d}: {{address: 10.{i // 65536}.{(i // 256) % 256}.{i % 256}, "
            f"zone: zone-{i % 3}, instance_id: i-{i + 1:017x}, tags: {{role: {role}, rack: r{i % 40}}}}}\n"
        )
    f.write("groups:\n")
    for role in roles:
        f.write(f"  {role}: {{match: role={role}}}\n")
with open(os.path.join(out, "playbook.yml"), "w") as f:
    f.write("name: large rollout\nhosts: all\npolicy:\n  concurrency: 50\n  batches: [1, 5%, 25%]\n  max_failures: 2%\ntasks:\n")
    for t in range(tasks):
        f.write(f"  - name: step-{t:02d}\n")
        if t % 3 == 0:
            f.write(f"    command: [/usr/local/bin/step, \"{t}\", \"{{{{ host.name }}}}\", \"{{{{ release }}}}\"]\n")
        elif t % 3 == 1:
            f.write(f"    shell: echo {{{{ host.tags.rack }}}} {{{{ app_dir }}}}/{t} | logger -t step-{t}\n")
        else:
            f.write("    shell: systemctl is-active app\n    when: host.tags.role != 'db'\n")
        if t > 0:
            f.write(f"    needs: [step-{t - 1:02d}]\n")
