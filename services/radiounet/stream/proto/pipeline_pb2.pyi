from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TileLayout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TILE_LAYOUT_FULL: _ClassVar[TileLayout]
    TILE_LAYOUT_KEPT: _ClassVar[TileLayout]
TILE_LAYOUT_FULL: TileLayout
TILE_LAYOUT_KEPT: TileLayout

class ObjectRef(_message.Message):
    __slots__ = ("bucket", "key", "etag", "size_bytes", "content_type", "shape", "dtype")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    key: str
    etag: str
    size_bytes: int
    content_type: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    def __init__(self, bucket: _Optional[str] = ..., key: _Optional[str] = ..., etag: _Optional[str] = ..., size_bytes: _Optional[int] = ..., content_type: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("name", "z", "m500_1e14", "theta500_arcmin")
    NAME_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    M500_1E14_FIELD_NUMBER: _ClassVar[int]
    THETA500_ARCMIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    z: float
    m500_1e14: float
    theta500_arcmin: float
    def __init__(self, name: _Optional[str] = ..., z: _Optional[float] = ..., m500_1e14: _Optional[float] = ..., theta500_arcmin: _Optional[float] = ...) -> None: ...

class Pointing(_message.Message):
    __slots__ = ("id", "survey", "ra_deg", "dec_deg", "size_px", "pixel_scale_arcsec", "cluster", "submitted_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    SURVEY_FIELD_NUMBER: _ClassVar[int]
    RA_DEG_FIELD_NUMBER: _ClassVar[int]
    DEC_DEG_FIELD_NUMBER: _ClassVar[int]
    SIZE_PX_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SCALE_ARCSEC_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    survey: str
    ra_deg: float
    dec_deg: float
    size_px: int
    pixel_scale_arcsec: float
    cluster: Cluster
    submitted_unix_ms: int
    def __init__(self, id: _Optional[str] = ..., survey: _Optional[str] = ..., ra_deg: _Optional[float] = ..., dec_deg: _Optional[float] = ..., size_px: _Optional[int] = ..., pixel_scale_arcsec: _Optional[float] = ..., cluster: _Optional[_Union[Cluster, _Mapping]] = ..., submitted_unix_ms: _Optional[int] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version", "signature")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    signature: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., signature: _Optional[str] = ...) -> None: ...

class Cutout(_message.Message):
    __slots__ = ("pointing", "fits", "ny", "nx", "source", "fetched_unix_ms")
    POINTING_FIELD_NUMBER: _ClassVar[int]
    FITS_FIELD_NUMBER: _ClassVar[int]
    NY_FIELD_NUMBER: _ClassVar[int]
    NX_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FETCHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    pointing: Pointing
    fits: ObjectRef
    ny: int
    nx: int
    source: str
    fetched_unix_ms: int
    def __init__(self, pointing: _Optional[_Union[Pointing, _Mapping]] = ..., fits: _Optional[_Union[ObjectRef, _Mapping]] = ..., ny: _Optional[int] = ..., nx: _Optional[int] = ..., source: _Optional[str] = ..., fetched_unix_ms: _Optional[int] = ...) -> None: ...

class TileChunk(_message.Message):
    __slots__ = ("pointing", "cutout", "probabilities", "chunk_index", "chunk_count", "first_tile", "tile_count", "total_tiles", "tile_size", "stride", "image_ny", "image_nx", "model", "profile", "unit_scale", "layout")
    POINTING_FIELD_NUMBER: _ClassVar[int]
    CUTOUT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TILE_FIELD_NUMBER: _ClassVar[int]
    TILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TILES_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_NY_FIELD_NUMBER: _ClassVar[int]
    IMAGE_NX_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    UNIT_SCALE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    pointing: Pointing
    cutout: ObjectRef
    probabilities: ObjectRef
    chunk_index: int
    chunk_count: int
    first_tile: int
    tile_count: int
    total_tiles: int
    tile_size: int
    stride: int
    image_ny: int
    image_nx: int
    model: ModelRef
    profile: str
    unit_scale: float
    layout: TileLayout
    def __init__(self, pointing: _Optional[_Union[Pointing, _Mapping]] = ..., cutout: _Optional[_Union[ObjectRef, _Mapping]] = ..., probabilities: _Optional[_Union[ObjectRef, _Mapping]] = ..., chunk_index: _Optional[int] = ..., chunk_count: _Optional[int] = ..., first_tile: _Optional[int] = ..., tile_count: _Optional[int] = ..., total_tiles: _Optional[int] = ..., tile_size: _Optional[int] = ..., stride: _Optional[int] = ..., image_ny: _Optional[int] = ..., image_nx: _Optional[int] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., profile: _Optional[str] = ..., unit_scale: _Optional[float] = ..., layout: _Optional[_Union[TileLayout, str]] = ...) -> None: ...

class ProbabilityMap(_message.Message):
    __slots__ = ("pointing", "map", "quicklook", "cutout", "model", "n_tiles")
    POINTING_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    QUICKLOOK_FIELD_NUMBER: _ClassVar[int]
    CUTOUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    N_TILES_FIELD_NUMBER: _ClassVar[int]
    pointing: Pointing
    map: ObjectRef
    quicklook: ObjectRef
    cutout: ObjectRef
    model: ModelRef
    n_tiles: int
    def __init__(self, pointing: _Optional[_Union[Pointing, _Mapping]] = ..., map: _Optional[_Union[ObjectRef, _Mapping]] = ..., quicklook: _Optional[_Union[ObjectRef, _Mapping]] = ..., cutout: _Optional[_Union[ObjectRef, _Mapping]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., n_tiles: _Optional[int] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("pointing", "result", "map", "model", "has_cluster", "ratio", "threshold", "diffuse", "n_components")
    POINTING_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HAS_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DIFFUSE_FIELD_NUMBER: _ClassVar[int]
    N_COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    pointing: Pointing
    result: ObjectRef
    map: ObjectRef
    model: ModelRef
    has_cluster: bool
    ratio: float
    threshold: float
    diffuse: bool
    n_components: int
    def __init__(self, pointing: _Optional[_Union[Pointing, _Mapping]] = ..., result: _Optional[_Union[ObjectRef, _Mapping]] = ..., map: _Optional[_Union[ObjectRef, _Mapping]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., has_cluster: _Optional[bool] = ..., ratio: _Optional[float] = ..., threshold: _Optional[float] = ..., diffuse: _Optional[bool] = ..., n_components: _Optional[int] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("stage", "reason", "detail", "source_topic", "partition", "offset", "key", "value", "headers", "producer", "failed_unix_ms", "pointing_id")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    FAILED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    POINTING_ID_FIELD_NUMBER: _ClassVar[int]
    stage: str
    reason: str
    detail: str
    source_topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    producer: str
    failed_unix_ms: int
    pointing_id: str
    def __init__(self, stage: _Optional[str] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., source_topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., producer: _Optional[str] = ..., failed_unix_ms: _Optional[int] = ..., pointing_id: _Optional[str] = ...) -> None: ...
