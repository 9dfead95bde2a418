#!/usr/bin/env bash
# A `make test` step: checks deploy/kubernetes offline, with no cluster.
#   scripts/test-kubernetes.sh [BIN]      BIN: where the built sixty is (default: $BIN, else .build/debug)
#
# - every file parses as YAML, and every resource validates against the Kubernetes JSON schemas
#   of K8S_VERSION (default 1.30.0) with kubernetes-validate (PyPI; it ships the schemas, so no
#   network is used), strictly: an unknown field is an error;
# - kustomization.yaml lists exactly the manifests of its folder (runs/ holds Jobs made one per
#   run with kubectl create, outside it);
# - every `sixty` command line of a container (its command and args, or a `sh -c` script) names
#   subcommands this sixty has: `sixty SUBCOMMAND… --help` must describe that very command.
#   Only subcommands are checked, not flags: flags being added alongside these manifests
#   (--shard, --run-id, postgresql:// histories and broker stores) may not be in BIN yet;
# - the playbooks ConfigMap: `sixty jobs next` reads its jobs file (and so each job's playbook,
#   inventory and policy) and `sixty validate` each playbook with its inventory and policy;
#   broker.yml is loaded by `sixty broker public-key` with stand-ins for its secrets (without
#   `store:` when this sixty does not know it yet).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${BIN:-$root/.build/debug}}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
sixty=$bin/sixty
if [ ! -x "$sixty" ]; then
  echo "test-kubernetes: FAIL: no sixty at $sixty; build first (swift build) or pass BIN" >&2
  exit 1
fi
if ! python3 -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  echo "test-kubernetes: FAIL: kubernetes-validate is not installed; run scripts/install-deps.sh --tests" >&2
  exit 1
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sixty-k8s-test-XXXXXX")
trap 'rm -rf -- "$scratch"' EXIT

SIXTY=$sixty SCRATCH=$scratch K8S_VERSION=${K8S_VERSION:-1.30.0} \
  DEPLOY=${DEPLOY:-$root/deploy/kubernetes} python3 - <<'PY'
import copy, os, re, shlex, subprocess, sys
import yaml
import kubernetes_validate

sixty = os.environ["SIXTY"]
scratch = os.environ["SCRATCH"]
version = os.environ["K8S_VERSION"]
deploy = os.environ["DEPLOY"]
failures = []
checked = {"resources": 0, "command lines": 0}


def fail(message):
    failures.append(message)
    print(f"test-kubernetes: FAIL: {message}", file=sys.stderr)


def rel(path):
    return os.path.relpath(path, deploy)


files = sorted(
    os.path.join(folder, name)
    for folder, _, names in os.walk(deploy)
    for name in names
    if name.endswith((".yaml", ".yml"))
)
if not files:
    fail(f"no manifests in {deploy}")

# Every file parses; every document is a resource (a mapping with apiVersion and kind).
documents = []  # (file, index, document)
for path in files:
    try:
        with open(path) as handle:
            loaded = list(yaml.safe_load_all(handle))
    except yaml.YAMLError as error:
        fail(f"{rel(path)} is not valid YAML: {error}")
        continue
    for index, document in enumerate(loaded):
        if document is None:
            continue
        if not isinstance(document, dict) or "apiVersion" not in document or "kind" not in document:
            fail(f"{rel(path)}: document {index + 1} is not a resource with apiVersion and kind")
            continue
        documents.append((path, index, document))

# kustomization.yaml lists every manifest of its folder, each once, and nothing else.
kustomization = os.path.join(deploy, "kustomization.yaml")
if not os.path.exists(kustomization):
    fail("deploy/kubernetes has no kustomization.yaml")
else:
    listed = next((d for p, _, d in documents if p == kustomization), {}).get("resources") or []
    present = sorted(
        name for name in os.listdir(deploy)
        if name.endswith((".yaml", ".yml")) and name != "kustomization.yaml"
    )
    for name in sorted(set(listed)):
        if listed.count(name) > 1:
            fail(f"kustomization.yaml lists {name} {listed.count(name)} times")
        if name not in present:
            fail(f"kustomization.yaml lists {name}, which is not in {rel(deploy) if deploy != os.getcwd() else deploy}")
    for name in present:
        if name not in listed:
            fail(f"kustomization.yaml does not list {name}")

# The Kubernetes schemas, strictly.
for path, index, document in documents:
    if document["kind"] == "Kustomization":
        continue
    resource = copy.deepcopy(document)
    metadata = resource.setdefault("metadata", {}) or {}
    if "name" not in metadata and "generateName" in metadata:
        # A Job made with kubectl create gets its name from generateName; the validator wants one.
        metadata["name"] = metadata["generateName"] + "x"
    what = f"{rel(path)}: {document['kind']} {metadata.get('name', '(no name)')}"
    try:
        kubernetes_validate.validate(resource, version, strict=True)
        checked["resources"] += 1
    except kubernetes_validate.SchemaNotFoundError:
        fail(f"{what}: no schema for {document['apiVersion']} {document['kind']} in Kubernetes {version}")
    except kubernetes_validate.ValidationError as error:
        location = ".".join(str(p) for p in error.path)
        fail(f"{what} does not validate against Kubernetes {version}: {location}: {error.message}")


def pod_specs(document):
    """The pod specs of a workload resource."""
    kind, spec = document["kind"], document.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield (spec.get("template") or {}).get("spec") or {}
    elif kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        yield (job.get("template") or {}).get("spec") or {}


SHELL_BREAKS = {"&&", "||", ";", "|", "&"}


def sixty_command_lines(argv):
    """The argument lists given to sixty by one container's command + args."""
    if not argv:
        return
    if os.path.basename(argv[0]) == "sixty":
        yield argv[1:]
    elif os.path.basename(argv[0]) in ("sh", "bash", "dash") and "-c" in argv:
        script = argv[argv.index("-c") + 1]
        words = shlex.split(script.replace(";", " ; ").replace("&&", " && "), posix=True)
        for position, word in enumerate(words):
            if os.path.basename(word) == "sixty":
                rest = []
                for following in words[position + 1:]:
                    if following in SHELL_BREAKS:
                        break
                    rest.append(following)
                yield rest


def run_sixty(arguments, **options):
    return subprocess.run([sixty] + arguments, capture_output=True, text=True, timeout=60, **options)


help_cache = {}


def help_of(path):
    key = tuple(path)
    if key not in help_cache:
        help_cache[key] = run_sixty(list(path) + ["--help"])
    return help_cache[key]


def subcommands(text):
    """The names under SUBCOMMANDS: in swift-argument-parser's help."""
    names, inside = [], False
    for line in text.splitlines():
        if line.strip() == "SUBCOMMANDS:":
            inside = True
            continue
        if inside:
            if not line.strip() or not line.startswith("  ") or line.strip().startswith("See '"):
                if names:
                    break
                continue
            if line.startswith("   ") and names:
                continue  # a wrapped abstract
            names.append(line.split()[0])
    return names


def check_command_line(where, words):
    checked["command lines"] += 1
    path = []
    for word in words:
        result = help_of(path)
        names = subcommands(result.stdout)
        if not names:
            break  # a command without subcommands: the rest are its arguments and flags
        if word not in names:
            shown = " ".join(["sixty"] + path)
            fail(
                f"{where}: '{shown} {word}': {shown} has no subcommand '{word}' "
                f"(it has {', '.join(names)})"
            )
            return
        path.append(word)
    if not path:
        fail(f"{where}: 'sixty {' '.join(words)}' names no subcommand")
        return
    result = help_of(path)
    usage = "USAGE: " + " ".join(["sixty"] + path)
    if result.returncode != 0 or usage not in result.stdout:
        fail(f"{where}: 'sixty {' '.join(path)} --help' does not describe that command: {result.stderr.strip()[:300]}")


for path, index, document in documents:
    for spec in pod_specs(document):
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            argv = list(container.get("command") or []) + list(container.get("args") or [])
            if not container.get("command") and str(container.get("image", "")).split(":")[0].endswith("sixty"):
                argv = ["sixty"] + argv  # the image's entrypoint
            where = f"{rel(path)}: {document['kind']} {(document.get('metadata') or {}).get('name') or (document.get('metadata') or {}).get('generateName')} container {container.get('name')}"
            for words in sixty_command_lines(argv):
                check_command_line(where, words)

# The files of ConfigMaps, read by this sixty as the pods will read them.
def check(result, what):
    if result.returncode != 0:
        fail(f"{what} fails: {(result.stderr or result.stdout).strip()[:2000]}")
        return False
    return True


for path, index, document in documents:
    if document["kind"] != "ConfigMap":
        continue
    name = document["metadata"]["name"]
    data = document.get("data") or {}
    folder = os.path.join(scratch, name)
    os.makedirs(folder, exist_ok=True)
    for key, text in data.items():
        with open(os.path.join(folder, key), "w") as handle:
            handle.write(text)
    where = f"{rel(path)}: ConfigMap {name}"
    if "jobs.yml" in data:
        check(run_sixty(["jobs", "next", "--jobs", os.path.join(folder, "jobs.yml"), "--count", "1"]),
              f"{where}: sixty jobs next --jobs jobs.yml")
    static = "inventory.yml" if "inventory.yml" in data else None
    for key, text in sorted(data.items()):
        parsed = yaml.safe_load(text) if key.endswith((".yml", ".yaml")) else None
        if isinstance(parsed, dict) and "tasks" in parsed and "hosts" in parsed:
            arguments = ["validate", os.path.join(folder, key)]
            if static:
                arguments += ["-i", os.path.join(folder, static)]
            if "policy.yml" in data:
                arguments += ["--policy", os.path.join(folder, "policy.yml")]
            check(run_sixty(arguments), f"{where}: sixty validate {key}")
    if "broker.yml" in data:
        config = yaml.safe_load(data["broker.yml"])
        config["signing_key_file"] = os.path.join(folder, "signing.key")
        text = yaml.safe_dump(config)
        environment = dict(os.environ)
        for variable in re.findall(r"(?:secret_env|token_env): *([A-Za-z_][A-Za-z0-9_]*)", text):
            environment[variable] = "stand-in-secret-for-the-test-0123456789"
        environment["PGPASSWORD"] = "stand-in"
        def load(configuration):
            target = os.path.join(folder, "broker-checked.yml")
            with open(target, "w") as handle:
                handle.write(yaml.safe_dump(configuration))
            os.chmod(target, 0o600)
            return run_sixty(["broker", "public-key", "--config", target], env=environment)
        result = load(config)
        if result.returncode != 0 and "store" in config and "unknown key 'store'" in result.stderr + result.stdout:
            print(f"test-kubernetes: note: {sixty} does not know broker.yml's store: yet; checked the rest of broker.yml")
            del config["store"]
            result = load(config)
        check(result, f"{where}: sixty broker public-key --config broker.yml")

if failures:
    print(f"test-kubernetes: {len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print(
    f"test-kubernetes: {len(files)} files, {checked['resources']} resources valid for Kubernetes {version}, "
    f"kustomization complete, {checked['command lines']} sixty command lines with existing subcommands: ok"
)
PY
