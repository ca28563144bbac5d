"""The seller console: the help article as a web app on the four services' HTTP APIs."""
