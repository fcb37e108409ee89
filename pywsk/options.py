"""Options that several entity commands take alike (wsk's `-P`, `-a`, `-A`); `-p` is per command, its help says
where the parameters go."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ParamFileOpt = Annotated[
    Path | None, typer.Option("-P", "--param-file", metavar="FILE", help="FILE with parameters as a JSON object.")
]
AnnotationOpt = Annotated[
    list[str] | None,
    typer.Option("-a", "--annotation", metavar="KEY VALUE",
                 help="Annotation KEY VALUE (repeatable); VALUE is parsed as JSON if valid, else a string."),
]  # fmt: skip
AnnotationFileOpt = Annotated[
    Path | None,
    typer.Option("-A", "--annotation-file", metavar="FILE", help="FILE with annotations as a JSON object."),
]
