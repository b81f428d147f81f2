"""Generated protobuf classes (``make protos``); do not edit."""
