"""What the operating system refuses to start, checked before anything is stored or run.

A runnable's `run` argv and `env` end up in `execve(2)` (directly on the process runtime, inside the
container on Docker). The kernel refuses a NUL byte in any of them (C strings end there), an
environment entry is `NAME=value` so a name cannot be empty or contain `=`, one string may be at
most MAX_ARG_STRLEN (128 KiB) and all of argv plus the environment at most ARG_MAX (2 MiB by
default). Found at run time these are `platform_error`s, which a league retries as infrastructure
failures; found here they are problems with a JSON path, and nothing is stored.

Messages name the place, never the value: env values may be secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from coworld_pipeline.contract.image_reference import image_reference_problem
from coworld_pipeline.contract.problems import Problem, json_path

if TYPE_CHECKING:
    from coworld_pipeline.contract.episode_request import EpisodeRequest

MAX_ARG_STRING_BYTES = 128 * 1024  # Linux MAX_ARG_STRLEN, including the terminating NUL
# ARG_MAX is 2 MiB with the default 8 MiB stack; half is left for the variables the runtime adds
# (COGAME_*, tokens) and, on the process runtime, the host's own environment.
MAX_ARGV_ENV_BYTES = 1024 * 1024
MAX_POLICY_NAME_CHARS = 200  # names travel to games in COWORLD_POLICY_NAMES, one per slot
_POINTER_BYTES = 8  # each argv/env string also costs a pointer in ARG_MAX


def _encoded(text: str) -> bytes | None:
    """The bytes the OS would get (argv may carry undecodable bytes as surrogate escapes)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def _string_problem(text: Any, what: str, extra_bytes: int = 0) -> tuple[str | None, int]:
    """(why the OS refuses this string, or None; the bytes it costs in ARG_MAX)."""
    if not isinstance(text, str):
        return f"{what} must be a string", 0
    raw = _encoded(text)
    if raw is None:
        return f"{what} is not valid text (an unpaired surrogate)", 0
    size = len(raw) + extra_bytes + 1
    if b"\x00" in raw:
        return f"{what} contains a NUL byte: the OS cannot pass it to a process", size
    if size > MAX_ARG_STRING_BYTES:
        return (
            f"{what} is {size} bytes; the OS passes at most {MAX_ARG_STRING_BYTES} bytes per argument or "
            "environment entry",
            size,
        )
    return None, size


def env_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "an environment variable name must not be empty"
    if "=" in name:
        return "an environment variable name cannot contain '=' (the OS splits NAME=value at the first '=')"
    if "\x00" in name:
        return "an environment variable name cannot contain a NUL byte"
    if _encoded(name) is None:
        return "an environment variable name must be valid text"
    return None


def runnable_problems(
    run: Sequence[Any], env: Mapping[Any, Any], path: str, env_path: str | None = None
) -> list[Problem]:
    """Problems of one process's argv and environment; `path` is the runnable's JSON path."""
    problems: list[Problem] = []
    total = 0
    for i, arg in enumerate(run):
        message, size = _string_problem(arg, "this argument")
        total += size + _POINTER_BYTES
        if message:
            problems.append(Problem(f"{path}.run[{i}]", message))
    base = env_path or f"{path}.env"
    for name, value in env.items():
        where = json_path([name], base) if isinstance(name, str) else base
        name_message = env_name_problem(name)
        if name_message:
            problems.append(Problem(where, name_message))
            continue
        message, size = _string_problem(value, "this value", extra_bytes=len(_encoded(name) or b"") + 1)
        total += size + _POINTER_BYTES
        if message:
            problems.append(Problem(where, message))
    if total > MAX_ARGV_ENV_BYTES:
        problems.append(
            Problem(
                path,
                f"run and env together are {total} bytes; at most {MAX_ARGV_ENV_BYTES} bytes are passed to a "
                "process",
            )
        )
    return problems


def image_problem(image: Any) -> str | None:
    """An image reference with characters no registry or runtime accepts."""
    if not isinstance(image, str):
        return "must be a string"
    if any(c.isspace() or not c.isprintable() for c in image):
        return "an image reference cannot contain whitespace, NUL or control characters"
    if len(image) > 4096:
        return "an image reference is at most 4096 characters"
    return None


def runnable_image_problem(image: Any) -> str | None:
    """`image_problem`, and the Docker reference grammar for images that are about to run (a policy,
    a request's player): `/x` or `a//b` would otherwise reach the engine and fail there as a platform
    error. Manifests are checked by `image_problem` only: templates hold `{{PLACEHOLDERS}}`."""
    return image_problem(image) or image_reference_problem(image)


def policy_name_problem(name: str) -> str | None:
    if len(name) > MAX_POLICY_NAME_CHARS:
        return f"a policy name is at most {MAX_POLICY_NAME_CHARS} characters (got {len(name)})"
    if any(not c.isprintable() for c in name):
        return "a policy name cannot contain NUL, newlines or other control characters"
    if name != name.strip():  # `greedy ` and `greedy` would be two policies that print alike
        return "a policy name cannot start or end with whitespace"
    if "|" in name:  # the seat separator of every table (`planner:v1 | greedy:v1`)
        return "a policy name cannot contain '|' (it separates the seats in tables)"
    return None


def policy_problems(
    image: str, name: str, run: Sequence[str], env: Mapping[str, str], secret_env: Mapping[str, str]
) -> list[Problem]:
    """An uploaded policy's runnable: public and secret env are one environment at run time."""
    problems = []
    name_message = policy_name_problem(name)
    if name_message:
        problems.append(Problem("$.name", name_message))
    image_message = runnable_image_problem(image)
    if image_message:
        problems.append(Problem("$.image", image_message))
    problems += runnable_problems(run, env, "$")
    secret = runnable_problems([], secret_env, "$", env_path="$.secret_env")
    problems += [p for p in secret if p.path != "$"]
    both = runnable_problems(run, {**env, **secret_env}, "$")
    problems += [p for p in both if p.path == "$" and p not in problems]
    return problems


def request_problems(request: EpisodeRequest) -> list[Problem]:
    """Every process an episode request starts: the game (with COWORLD_POLICY_NAMES) and each slot."""
    problems: list[Problem] = []
    for i, player in enumerate(request.players):
        message = runnable_image_problem(player.image)
        if message and player.image.strip():
            problems.append(Problem(f"$.players[{i}].image", message))
        problems += runnable_problems(player.run, player.env, f"$.players[{i}]")
    if request.policy_names:
        names = json.dumps(request.policy_names)
        env = {**request.manifest.game.runnable.env, "COWORLD_POLICY_NAMES": names}
        for p in runnable_problems(request.manifest.game.runnable.run, env, "$.manifest.game.runnable"):
            if "COWORLD_POLICY_NAMES" in p.path:
                problems.append(
                    Problem("$.policy_names", p.message.replace("this value", "COWORLD_POLICY_NAMES"))
                )
            elif p.path == "$.manifest.game.runnable":
                problems.append(Problem("$.policy_names", f"with the game's run and env, {p.message}"))
    return problems


def manifest_runnable_problems(entries: Sequence[tuple[str, Any]]) -> list[Problem]:
    """(JSON path, runnable) pairs of a manifest: the game's and every role entry's argv and env."""
    problems: list[Problem] = []
    for path, runnable in entries:
        image = getattr(runnable, "image", "")
        message = image_problem(image) if image and image.strip() else None
        if message:
            problems.append(Problem(f"{path}.image", message))
        problems += runnable_problems(runnable.run, runnable.env, path)
    return problems
