"""The SDK's side of the wire: HTTP client, dispatch/get_result/cancel, local server control."""
