"""Network: the HTTP stack, auth, notary's update flow, registry and ACR clients."""
