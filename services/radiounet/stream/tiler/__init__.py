"""The tiler stage: cutouts -> normalised tiles -> model server (gRPC) -> tile chunks."""
