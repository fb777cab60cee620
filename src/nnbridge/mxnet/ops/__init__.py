"""MXNet operator importers, one module per family; importing a module registers its importers."""
