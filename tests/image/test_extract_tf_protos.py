"""extract_tf_protos.py: TensorFlow's generated modules without TensorFlow's runtime."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "docker" / "extract_tf_protos.py"
TENSORFLOW = Path(str(importlib.metadata.distribution("tensorflow-cpu").locate_file("tensorflow")))
#: What the tiler's client and the TF Serving API need at least.
NEEDED = (
    "tensorflow/core/framework/tensor_pb2.py",
    "tensorflow/core/framework/tensor_shape_pb2.py",
    "tensorflow/core/framework/types_pb2.py",
    "tensorflow/core/protobuf/meta_graph_pb2.py",
    "tensorflow/core/example/example_pb2.py",
)


@pytest.fixture(scope="module")
def extract() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extract_tf_protos", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def from_install(tmp_path_factory: pytest.TempPathFactory, extract: ModuleType) -> Path:
    target = tmp_path_factory.mktemp("protos")
    assert extract.main([str(TENSORFLOW), str(target)]) == 0
    return target


def test_output_is_generated_modules_and_empty_inits(from_install: Path) -> None:
    files = _files(from_install)
    assert set(NEEDED) <= set(files)
    others = [f for f in files if not f.endswith(("_pb2.py", "/__init__.py"))]
    assert not others
    inits = [f for f in files if f.endswith("__init__.py")]
    assert all(files[f] == b"" for f in inits)
    # Every package folder has one, from tensorflow/ down.
    folders = {str(Path(f).parent) for f in files}
    assert {str(Path(f).parent) for f in inits} == folders
    assert not (from_install / "tensorflow" / "python").exists()
    # The same bytes as the installed modules.
    for name in NEEDED:
        assert files[name] == (TENSORFLOW.parent / name).read_bytes()
    assert len(files) < 100 and sum(map(len, files.values())) < 2_000_000  # kB, not the 600 MB


def test_the_serving_api_imports_from_them_alone(from_install: Path) -> None:
    probe = f"""
import sys
sys.path.insert(0, {str(from_install)!r})
from tensorflow_serving.apis import (
    get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
import tensorflow
request = predict_pb2.PredictRequest()
tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\\0" * 4)
request.inputs["image"].CopyFrom(tensor)
assert tensorflow.__file__.startswith({str(from_install)!r}), tensorflow.__file__
runtime = sorted(m for m in sys.modules if m.startswith(("tensorflow.python", "keras")))
assert not runtime, runtime
print(len(request.SerializeToString()))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0


def test_a_wheel_gives_the_same_modules(
    tmp_path: Path, from_install: Path, extract: ModuleType
) -> None:
    """A wheel with TF's layout (the real one is 270 MB): only the generated modules come out."""
    wheel = tmp_path / "tensorflow_cpu-9.9.9-cp311-cp311-manylinux_2_27_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for sub in ("core", "compiler"):
            for path in (TENSORFLOW / sub).rglob("*_pb2.py"):
                archive.write(path, path.relative_to(TENSORFLOW.parent).as_posix())
        archive.writestr("tensorflow/__init__.py", "import tensorflow.python  # the runtime\n")
        archive.writestr("tensorflow/python/__init__.py", "raise ImportError('runtime')\n")
    target = tmp_path / "out"
    assert extract.main([str(wheel), str(target)]) == 0
    assert _files(target) == _files(from_install)


def test_extra_modules_bring_their_imports(tmp_path: Path, extract: ModuleType) -> None:
    source = extract.ProtoSource(TENSORFLOW)
    written = extract.extract(source, tmp_path, ["tensorflow.core.framework.summary_pb2"])
    # summary.proto imports TSL's histogram.proto (``from ... import *`` in the generated code).
    assert "tensorflow.compiler.xla.tsl.protobuf.histogram_pb2" in written
    assert (tmp_path / "tensorflow/compiler/xla/tsl/protobuf/histogram_pb2.py").is_file()


def test_a_runtime_import_is_refused(tmp_path: Path, extract: ModuleType) -> None:
    wheel = tmp_path / "tf.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tensorflow/core/a_pb2.py", "from tensorflow.core import b_pb2\n")
        archive.writestr(
            "tensorflow/core/b_pb2.py", "from tensorflow.python.framework import ops\n"
        )
    with extract.ProtoSource(wheel) as source, pytest.raises(ValueError) as info:
        extract.extract(source, tmp_path / "out", ["tensorflow.core.a_pb2"])
    assert str(info.value) == (
        "tensorflow.python.framework (imported by tensorflow.core.b_pb2) is not a generated "
        "*_pb2 module; the TensorFlow runtime would be needed"
    )
    with extract.ProtoSource(wheel) as source, pytest.raises(ValueError, match="is not in"):
        extract.extract(source, tmp_path / "out", ["tensorflow.core.missing_pb2"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "absent.whl", "does not exist"),
        (lambda d: (d / "x.txt").write_text("x") and d / "x.txt", "must be a .whl file"),
        (lambda d: (d / "x.whl").write_text("x") and d / "x.whl", "not a wheel"),
        (lambda d: d, "must be an installed 'tensorflow' package"),
    ],
)
def test_bad_sources_are_one_line_errors(
    tmp_path: Path, extract: ModuleType, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    assert extract.main([str(make(tmp_path)), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("extract_tf_protos.py: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_refuses_to_write_over_a_full_tensorflow(
    tmp_path: Path, extract: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tensorflow" / "python").mkdir(parents=True)
    assert extract.main([str(TENSORFLOW), str(tmp_path)]) == 1
    assert "already holds the full TensorFlow" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "tensorflow").iterdir()] == ["python"]
