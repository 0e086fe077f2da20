"""The HTTP plumbing under the routes: access control and request limits (:mod:`.security`), the
server's connection limits (:mod:`.server`) and the Server-Sent Events response (:mod:`.sse`)."""
