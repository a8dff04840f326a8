"""Registry credentials: one provider per registry family (Azure ACR, Alibaba ACR, generic).

``resolve.credentials_for`` picks the provider from the registry host (or the manifest's
``image.registry.kind``); every provider returns a ``RegistryCredentials`` held in memory only.
"""
