# fish completion for ktop (made by scripts/gen-docs.py from ktop's argparse definitions)
complete -c ktop -f  # no file names but where an option takes a file
function __ktop_probes; printf '%s\n' spawn funcs bio syscalls net sched all none; end

# the commands, as the first word
complete -c ktop -n __fish_use_subcommand -a snapshot -d 'Run the collectors headless for a while and print what they saw'
complete -c ktop -n __fish_use_subcommand -a doctor -d 'Report what this kernel offers, and start each probe to show its status'
complete -c ktop -n __fish_use_subcommand -a record -d 'Record snapshots to a file (JSON Lines, gzip when FILE ends in .gz), one line per tick, for ktop replay or scripts'
complete -c ktop -n __fish_use_subcommand -a replay -d 'Replay a recording in the dashboard, or print its snapshot document (--json)'
complete -c ktop -n __fish_use_subcommand -a export -d 'Serve the probes\' figures as Prometheus/OpenMetrics text (see docs/prometheus.md)'

# ktop
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -s h -l help -d 'show this help message and exit'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -s p -l pid -x -a '(__fish_complete_list , __fish_complete_pids)' -d 'trace only these processes (up to 8, as htop\'s -p) and every process they start, however deep'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l probes -x -a '(__fish_complete_list , __ktop_probes)' -d 'probes to run, comma-separated (default: spawn,funcs,bio,syscalls; known: spawn,funcs,bio,syscalls,net,sched; \'none\': the process table only)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l bpf-stats -d 'measure the kernel time of ktop\'s own programs (BPF_ENABLE_STATS; it costs every BPF program on the machine ~70 ns a run while on, so it is off by default)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l procfs -d 'read the process table from /proc each tick instead of the BPF task iterator (the fallback where the kernel has no task iterator; it costs ~20 us a process)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l exec-failures -d 'also trace failed execs, with their argv (it attaches the execve syscall tracepoints, which put every syscall on the machine on the kernel\'s slow path: about +60 ns a syscall here; successful execs never need them)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -s f -l func -x -d 'count calls of SPEC (repeatable), as funccount: func or k:func (kernel), lib:func or /path/bin:func (user, c: is libc), t:category:event, u:lib:probe (USDT); \'*\' wildcards'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l funcs-max -x -d 'most probes one -f SPEC may attach (default 1000, BCC\'s limit)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l disk -x -d 'trace this disk only (e.g. vda; a partition means its disk)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l syscalls-latency -x -a 'sampled on off' -d 'time the calls made in a tenth of the time, the first half of one tick in five (sampled, the default; a call still running when its window closes is counted, not timed), time every call (on: a sys_enter hook too, which every syscall pays for: see the README\'s benchmarks), or only count calls and errors (off). Counts and errors are exact in every mode. $KTOP_SYSCALLS_LATENCY sets the default'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -s d -l delay -x -d 'delay between refreshes in tenths of seconds, as htop\'s (-d 15: 1.5 s)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -s u -l user -x -a '(__fish_complete_users)' -d 'show only the processes of USER (a name or a UID; F4 changes it)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -s s -l sort-key -x -a 'pid ppid user cpu rss state threads command' -d 'sort the process table by COLUMN (pid, ppid, user, cpu, rss, state, threads, command; F6 changes it)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -s t -l tree -d 'show the process tree (F5 toggles it)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l readonly -d 'disable the keys that act on processes (F7/F8 nice, F9 kill)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l theme -x -d 'Textual theme name (default textual-dark; nord, gruvbox, dracula, ...)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l history -x -d 'seconds of ticks kept for pausing and stepping back (default 600)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l export -x -d 'also serve Prometheus metrics on ADDR (HOST:PORT, e.g. 127.0.0.1:9435)'
complete -c ktop -n 'not __fish_seen_subcommand_from snapshot doctor record replay export' -l version -d 'show program\'s version number and exit'

# ktop snapshot
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -s h -l help -d 'show this help message and exit'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -s d -l duration -x -d 'seconds to collect once the probes are live (default 1)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l format -x -a 'text json csv openmetrics' -d 'text (the default), json (the document: ktop/schemas/snapshot.schema.json), csv (one table, --table), or openmetrics (what ktop export would serve after the same ticks)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l json -d 'the same as --format json'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l table -x -a 'processes spawns funcs bio syscalls net sched' -d '--format csv: which table (default processes)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l max-events -x -d 'spawn events kept (default 100000)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l from -r -F -d 'read a recording (ktop record) instead of running the probes'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -s p -l pid -x -a '(__fish_complete_list , __fish_complete_pids)' -d 'trace only these processes (up to 8, as htop\'s -p) and every process they start, however deep'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l probes -x -a '(__fish_complete_list , __ktop_probes)' -d 'probes to run, comma-separated (default: spawn,funcs,bio,syscalls; known: spawn,funcs,bio,syscalls,net,sched; \'none\': the process table only)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l bpf-stats -d 'measure the kernel time of ktop\'s own programs (BPF_ENABLE_STATS; it costs every BPF program on the machine ~70 ns a run while on, so it is off by default)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l procfs -d 'read the process table from /proc each tick instead of the BPF task iterator (the fallback where the kernel has no task iterator; it costs ~20 us a process)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l exec-failures -d 'also trace failed execs, with their argv (it attaches the execve syscall tracepoints, which put every syscall on the machine on the kernel\'s slow path: about +60 ns a syscall here; successful execs never need them)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -s f -l func -x -d 'count calls of SPEC (repeatable), as funccount: func or k:func (kernel), lib:func or /path/bin:func (user, c: is libc), t:category:event, u:lib:probe (USDT); \'*\' wildcards'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l funcs-max -x -d 'most probes one -f SPEC may attach (default 1000, BCC\'s limit)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l disk -x -d 'trace this disk only (e.g. vda; a partition means its disk)'
complete -c ktop -n '__fish_seen_subcommand_from snapshot' -l syscalls-latency -x -a 'sampled on off' -d 'time the calls made in a tenth of the time, the first half of one tick in five (sampled, the default; a call still running when its window closes is counted, not timed), time every call (on: a sys_enter hook too, which every syscall pays for: see the README\'s benchmarks), or only count calls and errors (off). Counts and errors are exact in every mode. $KTOP_SYSCALLS_LATENCY sets the default'

# ktop doctor
complete -c ktop -n '__fish_seen_subcommand_from doctor' -s h -l help -d 'show this help message and exit'
complete -c ktop -n '__fish_seen_subcommand_from doctor' -l probes -x -a '(__fish_complete_list , __ktop_probes)' -d 'probes to check and start (default: spawn,funcs,bio,syscalls; known: spawn,funcs,bio,syscalls,net,sched; \'all\')'
complete -c ktop -n '__fish_seen_subcommand_from doctor' -l no-start -d 'only check features, start no probe'
complete -c ktop -n '__fish_seen_subcommand_from doctor' -l procfs -d 'do not start the task iterator (/proc instead)'

# ktop record
complete -c ktop -n '__fish_seen_subcommand_from record' -s h -l help -d 'show this help message and exit'
complete -c ktop -n '__fish_seen_subcommand_from record' -s o -l output -r -F -d 'the recording to write'
complete -c ktop -n '__fish_seen_subcommand_from record' -s d -l duration -x -d 'seconds to record once the probes are live (default: until Ctrl-C)'
complete -c ktop -n '__fish_seen_subcommand_from record' -l count -x -d 'ticks to record'
complete -c ktop -n '__fish_seen_subcommand_from record' -s p -l pid -x -a '(__fish_complete_list , __fish_complete_pids)' -d 'trace only these processes (up to 8, as htop\'s -p) and every process they start, however deep'
complete -c ktop -n '__fish_seen_subcommand_from record' -l probes -x -a '(__fish_complete_list , __ktop_probes)' -d 'probes to run, comma-separated (default: spawn,funcs,bio,syscalls; known: spawn,funcs,bio,syscalls,net,sched; \'none\': the process table only)'
complete -c ktop -n '__fish_seen_subcommand_from record' -l bpf-stats -d 'measure the kernel time of ktop\'s own programs (BPF_ENABLE_STATS; it costs every BPF program on the machine ~70 ns a run while on, so it is off by default)'
complete -c ktop -n '__fish_seen_subcommand_from record' -l procfs -d 'read the process table from /proc each tick instead of the BPF task iterator (the fallback where the kernel has no task iterator; it costs ~20 us a process)'
complete -c ktop -n '__fish_seen_subcommand_from record' -l exec-failures -d 'also trace failed execs, with their argv (it attaches the execve syscall tracepoints, which put every syscall on the machine on the kernel\'s slow path: about +60 ns a syscall here; successful execs never need them)'
complete -c ktop -n '__fish_seen_subcommand_from record' -s f -l func -x -d 'count calls of SPEC (repeatable), as funccount: func or k:func (kernel), lib:func or /path/bin:func (user, c: is libc), t:category:event, u:lib:probe (USDT); \'*\' wildcards'
complete -c ktop -n '__fish_seen_subcommand_from record' -l funcs-max -x -d 'most probes one -f SPEC may attach (default 1000, BCC\'s limit)'
complete -c ktop -n '__fish_seen_subcommand_from record' -l disk -x -d 'trace this disk only (e.g. vda; a partition means its disk)'
complete -c ktop -n '__fish_seen_subcommand_from record' -l syscalls-latency -x -a 'sampled on off' -d 'time the calls made in a tenth of the time, the first half of one tick in five (sampled, the default; a call still running when its window closes is counted, not timed), time every call (on: a sys_enter hook too, which every syscall pays for: see the README\'s benchmarks), or only count calls and errors (off). Counts and errors are exact in every mode. $KTOP_SYSCALLS_LATENCY sets the default'

# ktop replay
complete -c ktop -n '__fish_seen_subcommand_from replay' -s h -l help -d 'show this help message and exit'
complete -c ktop -n '__fish_seen_subcommand_from replay' -F
complete -c ktop -n '__fish_seen_subcommand_from replay' -l format -x -a 'text json csv openmetrics' -d 'text (the default), json (the document: ktop/schemas/snapshot.schema.json), csv (one table, --table), or openmetrics (what ktop export would serve after the same ticks)'
complete -c ktop -n '__fish_seen_subcommand_from replay' -l json -d 'the same as --format json'
complete -c ktop -n '__fish_seen_subcommand_from replay' -l table -x -a 'processes spawns funcs bio syscalls net sched' -d '--format csv: which table (default processes)'
complete -c ktop -n '__fish_seen_subcommand_from replay' -l speed -x -d 'replay speed (default 1)'
complete -c ktop -n '__fish_seen_subcommand_from replay' -l max-events -x -d 'spawn events kept for --json or --format (default 100000)'
complete -c ktop -n '__fish_seen_subcommand_from replay' -l history -x -d 'seconds of ticks kept for stepping back (default 600)'
complete -c ktop -n '__fish_seen_subcommand_from replay' -l theme -x -d 'Textual theme name (default textual-dark; nord, gruvbox, dracula, ...)'

# ktop export
complete -c ktop -n '__fish_seen_subcommand_from export' -s h -l help -d 'show this help message and exit'
complete -c ktop -n '__fish_seen_subcommand_from export' -l listen -x -d 'HOST:PORT to serve on (default 127.0.0.1:9435; \':PORT\' is every interface)'
complete -c ktop -n '__fish_seen_subcommand_from export' -s p -l pid -x -a '(__fish_complete_list , __fish_complete_pids)' -d 'trace only these processes (up to 8, as htop\'s -p) and every process they start, however deep'
complete -c ktop -n '__fish_seen_subcommand_from export' -l probes -x -a '(__fish_complete_list , __ktop_probes)' -d 'probes to run, comma-separated (default: spawn,funcs,bio,syscalls; known: spawn,funcs,bio,syscalls,net,sched; \'none\': the process table only)'
complete -c ktop -n '__fish_seen_subcommand_from export' -l bpf-stats -d 'measure the kernel time of ktop\'s own programs (BPF_ENABLE_STATS; it costs every BPF program on the machine ~70 ns a run while on, so it is off by default)'
complete -c ktop -n '__fish_seen_subcommand_from export' -l procfs -d 'read the process table from /proc each tick instead of the BPF task iterator (the fallback where the kernel has no task iterator; it costs ~20 us a process)'
complete -c ktop -n '__fish_seen_subcommand_from export' -l exec-failures -d 'also trace failed execs, with their argv (it attaches the execve syscall tracepoints, which put every syscall on the machine on the kernel\'s slow path: about +60 ns a syscall here; successful execs never need them)'
complete -c ktop -n '__fish_seen_subcommand_from export' -s f -l func -x -d 'count calls of SPEC (repeatable), as funccount: func or k:func (kernel), lib:func or /path/bin:func (user, c: is libc), t:category:event, u:lib:probe (USDT); \'*\' wildcards'
complete -c ktop -n '__fish_seen_subcommand_from export' -l funcs-max -x -d 'most probes one -f SPEC may attach (default 1000, BCC\'s limit)'
complete -c ktop -n '__fish_seen_subcommand_from export' -l disk -x -d 'trace this disk only (e.g. vda; a partition means its disk)'
complete -c ktop -n '__fish_seen_subcommand_from export' -l syscalls-latency -x -a 'sampled on off' -d 'time the calls made in a tenth of the time, the first half of one tick in five (sampled, the default; a call still running when its window closes is counted, not timed), time every call (on: a sys_enter hook too, which every syscall pays for: see the README\'s benchmarks), or only count calls and errors (off). Counts and errors are exact in every mode. $KTOP_SYSCALLS_LATENCY sets the default'
