"""Certification (CONTRACT §6): the manifest, every image, and one short fully-probed episode."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coworld_pipeline.contract.episode_request import certification_request
from coworld_pipeline.contract.generations import Generation
from coworld_pipeline.contract.manifest import CoworldManifest, Role
from coworld_pipeline.runtime.base import Runtime
from coworld_pipeline.runtime.episode import EpisodeOptions, EpisodeOutcome, PhaseCallback, run_episode
from coworld_pipeline.runtime.errors import EpisodeFailure


@dataclass
class CertificationReport:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    outcome: EpisodeOutcome | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in self.checks],
            "workspace": str(self.outcome.workspace) if self.outcome else None,
            "error": self.outcome.error.to_json() if self.outcome and self.outcome.error else None,
        }


def certify(
    manifest: CoworldManifest,
    runtime: Runtime,
    workspace: Path,
    timeout_seconds: float = 60.0,
    on_phase: PhaseCallback | None = None,
    package_dir: Path | None = None,
) -> CertificationReport:
    """Assumes the manifest already passed validation (the caller reports that check)."""
    report = CertificationReport()
    report.checks.append(("manifest is valid", True, manifest.label))
    roles = [("game", manifest.game.runnable.image)] + [
        (f"{role.value} {r.id}", r.image) for role in Role for r in manifest.role(role) if r.image
    ]
    images_ok = True
    if runtime.name == "process":
        report.checks.append(("images present", True, "skipped: the process runtime does not use images"))
    else:
        for label, image in roles:
            try:
                runtime.check_image(image)
            except EpisodeFailure as exc:
                if label.startswith("commissioner ") and manifest.generation is Generation.V0_1_64:
                    # 0.1.64 deprecates container commissioners; leagues here run their own.
                    note = "skipped (deprecated role): " + exc.message
                    report.checks.append((f"image of {label}", True, note))
                    continue
                images_ok = False
                report.checks.append((f"image of {label} present", False, exc.message))
        if images_ok:
            report.checks.append(("images present", True, f"{len({i for _, i in roles})} image(s)"))
    if not images_ok:
        return report
    options = EpisodeOptions(
        timeout_seconds=timeout_seconds,
        verify_replay=True,
        purpose="cert",
        on_phase=on_phase,
        package_dir=package_dir,
    )
    outcome = run_episode(certification_request(manifest), workspace, runtime, options)
    report.outcome = outcome
    report.checks += outcome.checks
    if outcome.ok:
        report.checks.append(("episode completed", True, f"scores {outcome.scores}"))
        report.checks.append(("replay.json written", True, ""))
    else:
        report.checks.append(("episode completed", False, str(outcome.error)))
    return report
