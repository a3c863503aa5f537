"""``python -m learned.convert --model M --official FILE --out FILE.pt``: authors' weights -> our format.

The output is a weights-only ``torch.save`` of ``{"format", "model", "config", "state_dict"}`` with
this toolkit's parameter names, written atomically; load it with ``learned.load_checkpoint`` or
pass it to ``python -m learned.deblur --checkpoint``. The IFAN bug-compatibility flag is kept in
``config`` so the converted model computes exactly what the authors' code computes.
"""

from __future__ import annotations

from pathlib import Path

from optics import cli

from .training.checkpoints import OFFICIAL_FORMATS, load_official_checkpoint, save_checkpoint


def main(argv=None) -> int:
    parser = cli.ArgumentParser(prog="python -m learned.convert", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=sorted(OFFICIAL_FORMATS))
    parser.add_argument("--official", required=True, type=Path, help="the authors' checkpoint file")
    parser.add_argument("--out", required=True, type=Path, help="output .pt file")
    cli.add_overwrite_argument(parser)
    args = parser.parse_args(argv)
    cli.check_input_file(args.official, "--official checkpoint")
    cli.check_output_files([(args.out, [args.official])], overwrite=args.overwrite, suffixes=(".pt", ".pth"),
                           what="--out")
    model = load_official_checkpoint(args.model, args.official)
    config = {"reuse_vertical_kernel": True} if args.model.startswith("ifan") else {}
    save_checkpoint(model, args.model, args.out, config)
    print(f"{args.official} ({OFFICIAL_FORMATS[args.model]}) -> {args.out}")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
