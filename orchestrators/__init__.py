"""Restore orchestration for Microsoft 365 Backup (OneDrive) on Azure Functions.

Modules import their SDKs lazily so that the Functions worker indexes `function_app` quickly.
"""
