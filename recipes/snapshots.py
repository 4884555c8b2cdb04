"""Rebuild the eval snapshots (eval/data/) and write every task YAML (eval/tasks/) from the registry.

    python recipes/snapshots.py --all                        # every task type, its plain variant, the transfer tasks
    python recipes/snapshots.py --task cognitive_reasoning   # one task type's snapshot and YAMLs
    python recipes/snapshots.py --all --yaml_only            # the YAMLs only, after a registry change

Each YAML records its snapshot's sha256; its metadata.version goes up when the documents or the YAML change
(cognitive/evaluation/snapshots.py, pinning.py).
"""

from cognitive import tasks
from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.evaluation.snapshots import DOCS_PER_DIFFICULTY, SNAPSHOT_DIFFICULTIES, rebuild


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Rebuild eval snapshots in eval/data/ and write the task YAMLs from cognitive/tasks.py (with "
        "each snapshot's sha256; the version goes up when documents or a YAML change)."
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", choices=tasks.eval_tasks())
    which.add_argument("--all", action="store_true", help="every task, its plain variant, the transfer tasks")
    parser.add_argument("--per_difficulty", type=int, default=DOCS_PER_DIFFICULTY)
    parser.add_argument("--difficulties", nargs="+", default=[d.value for d in SNAPSHOT_DIFFICULTIES])
    parser.add_argument(
        "--yaml_only",
        action="store_true",
        help="keep the own snapshots, write the task YAMLs (after a registry change)",
    )
    return parser


@exit_on_user_error
def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    names = tasks.eval_tasks() if args.all else [args.task]
    rebuild(names, args.per_difficulty, args.difficulties, with_transfer=args.all, yaml_only=args.yaml_only)


if __name__ == "__main__":
    main()
