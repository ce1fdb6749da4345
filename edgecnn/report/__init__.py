"""Tables (Markdown, CSV, JSON) and plots of accuracy, mult-adds and latency."""
