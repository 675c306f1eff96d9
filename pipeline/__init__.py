"""TaskMaster Persona Studio pipeline: persona spec -> data -> LoRA -> evaluation -> package -> Hub.

Every stage is a plain function with one typed config, usable without Gradio; the CLI
(`python -m pipeline ...`) and the studio (`studio/`) both build those configs and call them.
"""

__version__ = "0.1.0"
