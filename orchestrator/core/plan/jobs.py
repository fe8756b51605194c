"""A run of one shipped llama.cpp tool over the owner's files (llama-perplexity, llama-imatrix,
llama-quantize): which files it reads, the one folder it writes, and its command line as the runtime sees
those paths. In a container each file's folder is mounted read-only and the output folder alone is
writable; on the host the paths are the host's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from orchestrator.core.plan.argv import binary
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.native import NativeBuild

# Where a job's inputs (each in its own folder) and its output folder are inside the container.
CONTAINER_INPUTS = PurePosixPath("/inputs")
CONTAINER_OUTPUT = PurePosixPath("/output")


@dataclass(frozen=True)
class ToolJob:
    """argv's words are text, or host paths: a file the tool reads, or one in `output` it writes."""

    argv: tuple[str | Path, ...]
    output: Path
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        return str(self.argv[0])

    def inputs(self) -> tuple[Path, ...]:
        return tuple(
            dict.fromkeys(w.parent for w in self.argv if isinstance(w, Path) and w.parent != self.output)
        )

    def container_argv(self) -> tuple[str, ...]:
        where = {folder: CONTAINER_INPUTS / str(i) for i, folder in enumerate(self.inputs())}
        words = []
        for word in self.argv:
            if not isinstance(word, Path):
                words.append(word)
            elif word.parent == self.output:
                words.append(str(CONTAINER_OUTPUT / word.name))
            else:
                words.append(str(where[word.parent] / word.name))
        return tuple(words)

    def volumes(self) -> tuple[tuple[str, str, str], ...]:
        reads = tuple((str(f), str(CONTAINER_INPUTS / str(i)), "ro") for i, f in enumerate(self.inputs()))
        return (*reads, (str(self.output), str(CONTAINER_OUTPUT), "rw"))

    def host_argv(self, build: NativeBuild) -> tuple[str, ...]:
        """On the host: the build's own binary (its prefix's bin), the host's paths."""
        program, *args = (str(w) for w in self.argv)
        return (binary(program, build), *args)

    def argv_for(self, build: ImageBuild | NativeBuild) -> tuple[str, ...]:
        return self.container_argv() if isinstance(build, ImageBuild) else self.host_argv(build)


def with_paths(words: tuple[str, ...], **paths: Path) -> tuple[str | Path, ...]:
    """A command's words with each {name} replaced by the host path given for it (mapped per runtime)."""
    return tuple(paths.get(w[1:-1], w) if w.startswith("{") and w.endswith("}") else w for w in words)
