"""The Ray actor shell around the pure components (sessions, REST API); see DESIGN.md."""
