"""Which of the versions on disk a model should serve: TF Serving's `model_version_policy`."""

from __future__ import annotations

from collections.abc import Iterable

from layertap.proto import serving_pb2 as pb

__all__ = ["aspired_versions", "describe"]


def aspired_versions(policy: pb.ServableVersionPolicy, on_disk: Iterable[int]) -> set[int]:
    """The versions `policy` asks to serve, among those `on_disk`.

    `latest` (the default, also when no policy is set) keeps the `num_versions` highest (at least one);
    `all` keeps every version; `specific` keeps the listed versions that exist.
    """
    versions = sorted(set(on_disk))
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(versions)
    if choice == "specific":
        return set(versions) & set(policy.specific.versions)
    count = max(1, policy.latest.num_versions) if choice == "latest" else 1
    return set(versions[-count:])


def describe(policy: pb.ServableVersionPolicy) -> str:
    """The policy in a log-friendly form: `latest{1}`, `all`, `specific{1,3}`."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return "all"
    if choice == "specific":
        return "specific{" + ",".join(str(v) for v in sorted(policy.specific.versions)) + "}"
    count = max(1, policy.latest.num_versions) if choice == "latest" else 1
    return f"latest{{{count}}}"
