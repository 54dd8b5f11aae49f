"""A plugin that fails at import."""

raise RuntimeError("the plugin's import exploded")
