"""Reference implementations of the hub's custom-domain ops, by family."""
