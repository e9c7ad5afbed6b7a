"""From question to checked Answer: the pipeline, prompts, citations and the output guard."""
