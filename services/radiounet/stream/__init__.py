"""The streaming pipeline: Kafka topics between small services, arrays in the object store.

Data flow (one topic per arrow, see :mod:`radiounet.stream.topics`)::

    pointings -> fetcher -> cutouts -> tiler <-gRPC-> model server
              -> tile chunks -> reassembler -> maps -> classifier -> detections

Every stage sends what it cannot handle to the dead-letter topic. Large arrays
(FITS cutouts, probability tiles, maps) never travel in Kafka: they are written
to the object store under deterministic keys (:mod:`radiounet.stream.keys`) and
messages carry an :class:`~radiounet.stream.proto.pipeline_pb2.ObjectRef`.
"""
