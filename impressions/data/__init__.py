"""Data: annotations, the clip index, video, audio, faces and per-clip signals, shards, dataset tables."""
