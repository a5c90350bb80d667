"""Fuzzing manifest and episode-request validation: bad input ends in problems, never a crash or a hang.

10,000 mutated manifests and 1,000 mutated requests (seeded, from the real manifests) go through the
validation functions in-process; a sample of each runs through the real CLI, and the nastiest inputs
run under a 256 MiB address-space limit. Each case must either validate or raise ContractError with
problems that each name a JSON path; any other exception, or a case that needs more than CASE_SECONDS
of CPU, fails the test with the seed that reproduces it. CASE_SECONDS is a ceiling, not a performance
target, and it is CPU time: the machine is shared, so wall-clock time says little about the code.
The CLI runs under RLIMIT_AS (memory) and RLIMIT_CPU (time): the kernel enforces both bounds.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from coworld_pipeline.contract.episode_request import parse_episode_request
from coworld_pipeline.contract.limits import parse_json_text
from coworld_pipeline.contract.manifest import CoworldManifest, parse_manifest
from coworld_pipeline.contract.problems import ContractError
from tests.contract.mutator import (
    Mutator,
    nasty_manifests,
    nasty_requests,
    orchard,
    request_for,
    seed_manifests,
)

MANIFEST_CASES = 10_000
REQUEST_CASES = 1_000
CLI_SAMPLE = 50
CASE_SECONDS = 2.0
MEMORY_LIMIT = 256 * 1024 * 1024
CPU_LIMIT = 4  # seconds for one CLI run: interpreter start-up (~0.3-0.8 s) plus at most 2 s of answer
COWORLD = str(Path(sys.executable).with_name("coworld"))
ORCHARD = Path(__file__).resolve().parents[2] / "examples/orchard/coworld_manifest.json"
JSON_PATH = re.compile(r"^\$(?:$|[.\[])")


def _check_problems(exc: ContractError, case: str) -> None:
    assert exc.problems, f"{case}: ContractError without problems"
    for problem in exc.problems:
        assert JSON_PATH.match(problem.path), f"{case}: problem without a JSON path: {problem}"
        assert problem.message, f"{case}: empty message at {problem.path}"


def _use_manifest(manifest: CoworldManifest) -> None:
    """What `coworld validate` and `upload-coworld` do with a valid manifest: it must not raise."""
    rule = manifest.slot_rule
    rule.describe()
    for variant in manifest.variants:
        manifest.slots_for(variant.game_config, rule.min_slots)
        manifest.describe_slots(variant.game_config)  # the summary `coworld validate` prints
    assert manifest.content_hash.startswith("sha256:")
    json.dumps(manifest.to_json_dict())


def _validate_manifest(text: str, case: str) -> bool:
    """True when valid; asserts the contract of an invalid answer."""
    try:
        manifest = parse_manifest(parse_json_text(text, "manifest"), source="manifest")
    except ContractError as exc:
        _check_problems(exc, case)
        return False
    _use_manifest(manifest)
    return True


def _validate_request(text: str, case: str) -> bool:
    try:
        request = parse_episode_request(parse_json_text(text, "episode request"))
    except ContractError as exc:
        _check_problems(exc, case)
        return False
    json.dumps(request.to_json_dict())
    return True


def _run_cases(kind: str, seeds: list[Any], count: int, seed: int, validate: Any) -> dict[str, Any]:
    mutator = Mutator(seed)
    stats = {"valid": 0, "invalid": 0, "slowest": 0.0}
    for i in range(count):
        case = f"{kind} case {i} (Mutator({seed}))"
        text = mutator.text(seeds[i % len(seeds)])
        started = time.process_time()
        try:
            ok = validate(text, case)
        except AssertionError:
            raise
        except Exception as exc:  # the point of the test: name the case that escaped
            raise AssertionError(f"{case}: {type(exc).__name__} escaped: {exc!s:.300}") from exc
        elapsed = time.process_time() - started
        assert elapsed < CASE_SECONDS, f"{case} took {elapsed:.2f} s of CPU"
        stats["valid" if ok else "invalid"] += 1
        stats["slowest"] = max(stats["slowest"], elapsed)
    return stats


def test_mutated_manifests_answer_with_problems() -> None:
    seeds = list(seed_manifests().values())
    stats = _run_cases("manifest", seeds, MANIFEST_CASES, 12, _validate_manifest)
    print(f"manifests: {stats}")
    # The mutations must exercise both outcomes, or the fuzzer is not testing validation.
    assert stats["invalid"] > MANIFEST_CASES // 2
    assert stats["valid"] > 50


def test_mutated_requests_answer_with_problems() -> None:
    seeds = [request_for(m) for m in seed_manifests().values()]
    stats = _run_cases("request", seeds, REQUEST_CASES, 1212, _validate_request)
    print(f"requests: {stats}")
    assert stats["invalid"] > REQUEST_CASES // 2
    assert stats["valid"] > 5


# ---- the inputs issue 12 reported, by name --------------------------------------------------------

NASTY_MANIFESTS = nasty_manifests()
NASTY_REQUESTS = nasty_requests()
# Named inputs that are valid (expensive for a stock validator, cheap here).
VALID_NASTY = {"unique_items_quadratic"}


@pytest.mark.parametrize("name", sorted(NASTY_MANIFESTS))
def test_named_hostile_manifest(name: str) -> None:
    started = time.process_time()
    valid = _validate_manifest(NASTY_MANIFESTS[name], name)
    assert time.process_time() - started < CASE_SECONDS
    assert valid == (name in VALID_NASTY)


@pytest.mark.parametrize("name", sorted(NASTY_REQUESTS))
def test_named_hostile_request(name: str) -> None:
    started = time.process_time()
    assert not _validate_request(NASTY_REQUESTS[name], name)
    assert time.process_time() - started < CASE_SECONDS


def test_named_problems_say_what_and_where() -> None:
    """The messages for the issue's cases name the limit at the offending path."""
    expected = {
        "int_5000_digits": ("$.game.config_schema.properties.tokens.minItems", "5000 digits"),
        "ref_to_nowhere": ("$.game.config_schema.properties.a['$ref']", "points to nothing"),
        "ref_to_itself": ("$.game.config_schema['$ref']", "never end"),
        "results_properties_not_object": ("$.game.results_schema.properties", "object"),
        "tokens_5e6": ("$.game.config_schema.properties.tokens.minItems", "256"),
        "tokens_1e8": ("$.game.config_schema.properties.tokens.maxItems", "256"),
        "pattern_redos": ("$.variants[0].game_config.label", "does not match"),
        "anyof_fan_out": ("$.variants[0].game_config", "budget"),
        "nul_in_run": ("$.player[0].run[2]", "NUL"),
    }
    for name, (path, words) in expected.items():
        with pytest.raises(ContractError) as caught:
            parse_manifest(parse_json_text(NASTY_MANIFESTS[name], name))
        found = {p.path: p.message for p in caught.value.problems}
        assert path in found, (name, found)
        assert words in found[path], (name, found[path])
    deep = parse_problems(NASTY_MANIFESTS["schema_700_deep"])
    assert deep[0].path.startswith("$.game.config_schema.properties.deep.properties.x")
    assert "at most 64 levels" in deep[0].message
    names = parse_problems(NASTY_REQUESTS["policy_names_1mb"], request=True)
    assert any(p.path == "$.policy_names" and "COWORLD_POLICY_NAMES" in p.message for p in names)


def parse_problems(text: str, request: bool = False) -> list[Any]:
    with pytest.raises(ContractError) as caught:
        data = parse_json_text(text, "doc")
        parse_episode_request(data) if request else parse_manifest(data)
    return caught.value.problems


# ---- the real CLI --------------------------------------------------------------------------------


def _limit_memory() -> None:
    """In the child: 256 MiB of address space and CPU_LIMIT seconds of CPU (then SIGXCPU/SIGKILL)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT, CPU_LIMIT + 1))


def _cli(args: list[str], limit_memory: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [COWORLD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        preexec_fn=_limit_memory if limit_memory else None,
    )


def _assert_refused(proc: subprocess.CompletedProcess[str], case: str, as_json: bool) -> None:
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, f"{case}:\n{output[-2000:]}"
    assert proc.returncode == 2, f"{case}: exit {proc.returncode}\n{output[-2000:]}"
    if as_json:
        answer = json.loads(proc.stdout)
        assert answer["ok"] is False and answer["problems"], case
        assert all(JSON_PATH.match(p["path"]) for p in answer["problems"]), case
    else:
        # Rich may wrap a long path onto the next line: "- " then the path.
        assert re.search(r"^\s+-\s+\$", proc.stderr, re.M), f"{case}: no JSON path in\n{proc.stderr[-2000:]}"


def _invalid_sample(kind: str, seeds: list[Any], seed: int, validate: Any) -> list[str]:
    """CLI_SAMPLE mutated documents that validation refuses (found in-process, then run for real)."""
    mutator, found = Mutator(seed), []
    while len(found) < CLI_SAMPLE:
        text = mutator.text(seeds[len(found) % len(seeds)])
        if not validate(text, f"{kind} sample"):
            found.append(text)
    return found


def _run_all(runs: list[tuple[list[str], str, bool]]) -> None:
    """Run CLI invocations a few at a time (each is mostly interpreter start-up) and check each."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = list(pool.map(lambda run: _cli(run[0]), runs))
    for (_, case, as_json), proc in zip(runs, procs, strict=True):
        _assert_refused(proc, case, as_json)


def test_cli_validate_refuses_mutated_manifests(tmp_path: Path) -> None:
    seeds = list(seed_manifests().values())
    runs = []
    for i, text in enumerate(_invalid_sample("manifest", seeds, 34, _validate_manifest)):
        path = tmp_path / f"m{i}.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        as_json = i % 2 == 0  # both outputs: JSON for tools, Rich for people
        command = "validate" if i % 5 else "upload-coworld"
        args = [command, str(path), *(["--json"] if as_json else [])]
        if command == "upload-coworld":
            args += ["--db", f"sqlite:///{tmp_path / 'league.db'}", "--home", str(tmp_path / "home")]
        runs.append((args, f"{command} {path}", as_json))
    _run_all(runs)
    # Nothing refused was stored.
    db = ["--db", f"sqlite:///{tmp_path / 'league.db'}", "--home", str(tmp_path / "home")]
    listed = _cli(["coworlds", "--json", *db])
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_cli_run_episode_refuses_mutated_requests(tmp_path: Path) -> None:
    seeds = [request_for(orchard())]
    runs = []
    for i, text in enumerate(_invalid_sample("request", seeds, 56, _validate_request)):
        path = tmp_path / f"r{i}.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        as_json = i % 2 == 0
        args = [
            "run-episode",
            str(ORCHARD),
            str(path),
            "--runtime",
            "process",
            "-o",
            str(tmp_path / f"ws{i}"),
        ]
        runs.append(([*args, *(["--json"] if as_json else [])], f"run-episode {path}", as_json))
    _run_all(runs)
    assert not list(tmp_path.glob("ws*/results.json"))  # nothing ran


def test_cli_hostile_inputs_within_256_mib(tmp_path: Path) -> None:
    """Every named input through the real CLI under 256 MiB and 4 s of CPU: exit 2, problems, no traceback."""
    runs = []
    for name in sorted(set(NASTY_MANIFESTS) - VALID_NASTY):
        path = tmp_path / f"m_{name}.json"
        path.write_text(NASTY_MANIFESTS[name], encoding="utf-8", errors="surrogatepass")
        runs.append((["validate", str(path), "--json"], f"manifest {name}"))
    for name in sorted(NASTY_REQUESTS):
        path = tmp_path / f"r_{name}.json"
        path.write_text(NASTY_REQUESTS[name], encoding="utf-8", errors="surrogatepass")
        workspace = tmp_path / f"ws_{name}"
        args = [
            "run-episode",
            str(ORCHARD),
            str(path),
            "--runtime",
            "process",
            "-o",
            str(workspace),
            "--json",
        ]
        runs.append((args, f"request {name}"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda r: _cli(r[0], limit_memory=True), runs))
    for (_, case), proc in zip(runs, results, strict=True):
        # A run over its CPU or memory limit is killed or fails: not exit 2 with problems.
        _assert_refused(proc, case, as_json=True)
    assert not list(tmp_path.glob("ws_*/*"))  # no request got as far as a workspace


def test_cli_validate_summarises_a_roster_sized_manifest(tmp_path: Path) -> None:
    """0.1.64: a 2-4 slot game whose configs leave the count to the roster (found by this fuzzer)."""
    manifest = orchard()
    manifest["apiVersion"] = "coworld.softmax.com/v1"
    schema = manifest["game"]["config_schema"]
    schema["required"] = [r for r in schema["required"] if r != "players"]
    for config in [v["game_config"] for v in manifest["variants"]] + [
        manifest["certification"]["game_config"]
    ]:
        config.pop("players", None)
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(manifest))
    proc = _cli(["validate", str(path), "--json"])
    assert proc.returncode == 0, proc.stderr
    assert {v["slots"] for v in json.loads(proc.stdout)["variants"]} == {"2-4"}


def test_seeds_are_valid_and_varied() -> None:
    """The fuzzer starts from documents that validate: otherwise it only tests the first check."""
    seeds = seed_manifests()
    assert len(seeds) >= 2
    for label, manifest in seeds.items():
        assert _validate_manifest(json.dumps(manifest), label), label
        assert _validate_request(json.dumps(request_for(manifest)), label), label
    mutator = Mutator(7)
    texts = {mutator.text(orchard()) for _ in range(20)}
    assert len(texts) > 15
    assert Mutator(3).text(orchard()) == Mutator(3).text(orchard())
