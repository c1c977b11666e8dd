"""Microsoft Graph Backup Storage emulator (OneDrive, SharePoint and Exchange restores; browse). See README.md."""

from .admin import AdminClient, AdminError
from .app import GraphEmulatorApp, build_app
from .auth import make_token
from .config import EmulatorConfig
from .credential import AsyncEmulatorCredential, EmulatorCredential
from .runner import GraphEmulator

__all__ = [
    "AdminClient",
    "AdminError",
    "AsyncEmulatorCredential",
    "EmulatorConfig",
    "EmulatorCredential",
    "GraphEmulator",
    "GraphEmulatorApp",
    "build_app",
    "make_token",
]
