"""The importable Python client of the gateway: `nexus run` uses it, and so can internal services.

    async with NexusClient("127.0.0.1:50050") as client:
        await client.sign_in("ada@example.com", "correct horse battery")
        task = await client.run_command("/scan https://example.com")
        async for event in client.stream_task(task.task_id):
            ...

See `nexus.client.client.NexusClient`.
"""

from nexus.client.client import Credentials, NexusClient, NotSignedIn

__all__ = ["Credentials", "NexusClient", "NotSignedIn"]
