"""Options shared by several commands that the command body does not take as arguments."""

from __future__ import annotations

from typing import Any

import click


def stashed_option(*decls: str, key: str, **attrs: Any) -> Any:
    """A click option whose value goes to ``ctx.meta[key]`` instead of the command's arguments,
    for helpers several commands share (read it with ``click.get_current_context().meta``)."""
    return click.option(*decls, expose_value=False,
                        callback=lambda ctx, _param, value: ctx.meta.__setitem__(key, value), **attrs)


#: --max-pixels for every command that decodes images.
max_pixels_option = stashed_option(
    "--max-pixels", key="max_pixels", type=click.IntRange(min=1), default=None,
    help="Refuse images larger than this many pixels (decompression-bomb guard; default ~89M).")
