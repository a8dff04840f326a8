"""Control-plane clients, one per cloud, over httpx (imported by the commands that call them)."""
