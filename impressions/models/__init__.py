"""Model families: networks, heads, and pretrained weights."""
