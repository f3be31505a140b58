"""The earlyrank HTTP service: ``api.app.create_app(settings)``."""
