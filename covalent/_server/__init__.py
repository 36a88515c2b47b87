"""The dispatcher server: REST API, event stream and UI on one port."""
