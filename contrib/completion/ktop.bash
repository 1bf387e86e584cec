# bash completion for ktop (made by scripts/gen-docs.py from ktop's argparse definitions)
_ktop() {
    local cur prev cmd opts
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    cmd=ktop
    if [[ ${COMP_CWORD} -gt 1 && " snapshot doctor record replay export profile " == *" ${COMP_WORDS[1]} "* ]]; then
        cmd=${COMP_WORDS[1]}
    fi
    case "$prev" in
        --probes) COMPREPLY=($(compgen -W "spawn funcs bio syscalls net sched profile http all none spawn,funcs,bio,syscalls,net,sched,profile,http" -- "$cur")); return ;;
        -s|--sort-key) COMPREPLY=($(compgen -W "pid ppid user cpu rss state threads command" -- "$cur")); return ;;
        --syscalls-latency) COMPREPLY=($(compgen -W "sampled on off" -- "$cur")); return ;;
        -u|--user) COMPREPLY=($(compgen -u -- "$cur")); return ;;
        -p|--pid) COMPREPLY=($(compgen -W "$(ls /proc | grep -E '^[0-9]+$')" -- "$cur")); return ;;
        -o|--output|--from|replay) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    case "$cmd" in
        ktop) opts="--bpf-stats --cgroup --delay --disk --exec-failures --export --filter --flag-sensitivity --func --funcs-max --help --history --http-query --no-color --no-colour --no-mouse --offcpu-min-us --offcpu-stacks --pid --probes --procfs --profile-hz --readonly --runq-slower-us --sort-key --syscalls-latency --theme --tree --user --version -C -F -M -d -f -h -p -s -t -u" ;;
        snapshot) opts="--bpf-stats --cgroup --disk --duration --exec-failures --flag-sensitivity --format --from --func --funcs-max --help --http-query --json --max-events --offcpu-min-us --offcpu-stacks --pid --probes --procfs --profile-hz --runq-slower-us --syscalls-latency --table -d -f -h -p" ;;
        doctor) opts="--help --no-start --probes --procfs -h" ;;
        record) opts="--bpf-stats --cgroup --count --disk --duration --exec-failures --flag-sensitivity --func --funcs-max --help --http-query --offcpu-min-us --offcpu-stacks --output --pid --probes --procfs --profile-hz --runq-slower-us --syscalls-latency -d -f -h -o -p" ;;
        replay) opts="--flag-sensitivity --flags --format --help --history --json --max-events --speed --table --theme -h" ;;
        export) opts="--bpf-stats --cgroup --disk --exec-failures --flag-sensitivity --func --funcs-max --help --http-query --listen --offcpu-min-us --offcpu-stacks --pid --probes --procfs --profile-hz --runq-slower-us --syscalls-latency -f -h -p" ;;
        profile) opts="--by-pid --duration --folded --help --offcpu --offcpu-min-us --pid --profile-hz -d -h -p" ;;
    esac
    if [[ ${COMP_CWORD} -eq 1 && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -W "snapshot doctor record replay export profile" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}
complete -F _ktop ktop
