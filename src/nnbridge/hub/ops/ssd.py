"""SSD ops (PriorBox, DetectionOutput): placeholder until implemented."""
