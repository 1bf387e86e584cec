"""psutil-based collectors: host facts, CPU and memory, the process table."""
