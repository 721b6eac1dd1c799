"""The TF Serving releases layertap knows: the TensorFlow each is built on and what else it links.

A release's op registry (what a SavedModel may use to load there) is its TensorFlow's; the profiles of those
registries live in `layertap/config/op_registries/` (tools/dump_op_registry.py writes them from PyPI's
`tensorflow-cpu` wheels). Facts below were read in tensorflow/serving at each release tag:
- the TensorFlow commit: `WORKSPACE` (`tensorflow_http_archive(git_commit=...)`). 2.17.1 builds the same
  commit as 2.17.0, so both use TensorFlow 2.17.0's registry.
- the TF Text the model server links: `tensorflow_serving/workspace.bzl` (`org_tensorflow_text`): v2.12.1
  from 2.16.1 through 2.19.1, v2.20.0 in 2.20.0. Its ops (`CaseFoldUTF8`, `WordpieceTokenizeWithOffsets`,
  ...) are not in TensorFlow's registry; their profiles (`tf-text-<version>.json.gz`) come from PyPI's
  `tensorflow-text` wheel of that version, and compat counts them as the server's.
- XLA on GPU: `tensorflow_serving/model_servers/BUILD` links `//tensorflow/compiler/jit:xla_gpu_jit` from
  2.18.0.
- Limits every release shares: REST's JSON writer cannot return float16 or bfloat16
  (`tensorflow_serving/util/json_tensor.cc`), warmup files hold at most 1000 records
  (`servables/tensorflow/saved_model_warmup_util.cc`; `layertap.version_folder.MAX_WARMUP_RECORDS`).
2.21.0 is the release the docker/ files pin (`layertap.config.compat.SERVING_VERSION`); its tag was not in the
tensorflow/serving snapshot read (master at 9d981c5, 2026-07-30), so its TensorFlow commit is not recorded.
Its TF Text is taken from that master: `workspace.bzl` links TF Text v2.20.0 there, unchanged since d695794
(2026-04-03), before the 2.20.0 release and through every TensorFlow update on master since.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from layertap.errors import ConfigError

__all__ = [
    "REST_UNSUPPORTED_DTYPES",
    "SERVER_RELEASES",
    "ServerRelease",
    "server_release",
    "version_key",
]

#: DataType names TF Serving's REST API cannot write as JSON (gRPC returns them).
REST_UNSUPPORTED_DTYPES = frozenset({"DT_HALF", "DT_BFLOAT16"})


@dataclass(frozen=True)
class ServerRelease:
    """One `tensorflow/serving` release.

    Attributes:
        version: the release ("2.17.1"), also its image tag.
        tensorflow: the TensorFlow release whose op registry it has (the profile's name).
        tensorflow_commit: the TensorFlow commit its WORKSPACE builds ("" when not read).
        tf_text: the TF Text release it links ("" when not read).
        xla_gpu: whether the GPU model server links XLA's GPU JIT.
    """

    version: str
    tensorflow: str
    tensorflow_commit: str
    tf_text: str
    xla_gpu: bool


SERVER_RELEASES: dict[str, ServerRelease] = {
    release.version: release
    for release in (
        ServerRelease("2.16.1", "2.16.1", "5bc9d26649cca274750ad3625bd93422617eed4b", "2.12.1", False),
        ServerRelease("2.17.0", "2.17.0", "ad6d8cc177d0c868982e39e0823d0efbfb95f04c", "2.12.1", False),
        ServerRelease("2.17.1", "2.17.0", "ad6d8cc177d0c868982e39e0823d0efbfb95f04c", "2.12.1", False),
        ServerRelease("2.18.0", "2.18.0", "6550e4bd80223cdb8be6c3afd1f81e86a4d433c3", "2.12.1", True),
        ServerRelease("2.18.1", "2.18.1", "cb64295ec7308f770b22db6047a1e755b35b7bee", "2.12.1", True),
        ServerRelease("2.19.0", "2.19.0", "e36baa302922ea3c7131b302c2996bd2051ee5c4", "2.12.1", True),
        ServerRelease("2.19.1", "2.19.1", "f4247ebb6f9e7421f38c3f01a9a5d5cd54bd24fd", "2.12.1", True),
        ServerRelease("2.20.0", "2.20.0", "72fbba3d20f4616d7312b5e2b7f79daf6e82f2fa", "2.20.0", True),
        ServerRelease("2.21.0", "2.21.0", "", "2.20.0", True),
    )
}

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a dotted version ("2.9.1" before "2.16.1")."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def server_release(version: str) -> ServerRelease:
    """The release `version` ("2.17.1"; a leading "v" and an image suffix like "-gpu" are accepted).

    Raises:
        ConfigError: `version` is not a release layertap has a profile for.
    """
    plain = version.strip().removeprefix("v").split("-", 1)[0]
    if _VERSION.match(plain) and plain in SERVER_RELEASES:
        return SERVER_RELEASES[plain]
    raise ConfigError(
        f"unknown TF Serving release {version!r}; layertap has profiles for {', '.join(SERVER_RELEASES)}"
    )
