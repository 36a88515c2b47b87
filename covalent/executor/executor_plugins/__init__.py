"""Built-in executor plugins, one module each; a module's name is the plugin's short name."""
