"""Plain modules and math used by the registered model and criterion."""
