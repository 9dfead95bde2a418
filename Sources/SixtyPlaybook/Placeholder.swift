// Module SixtyPlaybook.
