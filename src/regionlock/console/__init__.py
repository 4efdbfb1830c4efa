"""The operator console (issue 15, docs/console.md): server-rendered pages under `/console/`,
served by the service itself, with nothing fetched from elsewhere."""
