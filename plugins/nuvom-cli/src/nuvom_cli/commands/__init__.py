"""Command groups of the nuvom-cli plugin; each module has ``register(app)``."""
