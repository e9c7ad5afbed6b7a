"""Serving: the HTTP API, its limits and middleware, the start-up app, runtime state, uploads,
the Gradio chat app, its HTML rendering and web/ (the widget)."""
