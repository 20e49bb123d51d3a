# SPDX-License-Identifier: BSD-3-Clause
# bash completion for vhu-state: commands, each command's options, and file
# names where a file or a socket path is expected.  Installed as
# share/bash-completion/completions/vhu-state; works without the
# bash-completion package too (`source` it).  Keep the option lists in step
# with the commands' getopt tables (cli/*.c); test_vhu_state_completion
# checks a few.

_vhu_state()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev='' i cmd=''
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()

    local commands='inspect diff validate capture load roundtrip info help'
    local common='--json --max-size --timeout --help'

    # The command is the first word after the program that is not an option.
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} != -* ]]; then
            cmd=${COMP_WORDS[i]}
            break
        fi
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W '--help --version' -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        fi
        return 0
    fi

    # --opt=VALUE: bash splits it at '=' (COMP_WORDBREAKS); complete VALUE
    # as the value of --opt.
    if [[ $cur == = ]]; then
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        cur=''
    elif [[ $prev == = ]] && ((COMP_CWORD >= 2)); then
        prev=${COMP_WORDS[COMP_CWORD - 2]}
    fi

    # The value of an option that takes one.
    case $prev in
    -s | --socket | -c | -C | --control | -o | --output | -k | --keep)
        [[ $cmd == inspect && $prev == -s ]] && return 0 # inspect -s is --section
        _vhu_state_files "$cur"
        return 0
        ;;
    --max-size | --timeout | --section | -i | --ignore | -d | --device-version)
        return 0 # a size, seconds, a name or a path in the snapshot: nothing to offer
        ;;
    esac

    local opts files=1
    case $cmd in
    inspect) opts='--header-only --section --hexdump' ;;
    diff) opts='--ignore --upgrade' ;;
    validate) opts='--device-version' ;;
    capture) opts='--socket --control --output' files=0 ;;
    load) opts='--socket' ;;
    roundtrip) opts='--socket --ignore --keep' ;;
    info) opts='--control' files=0 ;;
    help)
        ((COMP_CWORD == i + 1)) && mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        return 0
        ;;
    *) return 0 ;;
    esac

    if [[ $cur == -* || $files == 0 ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$opts $common" -- "$cur")
    else
        _vhu_state_files "$cur"
    fi
    return 0
}

# File names (directories to descend into included), quoted as file names.
_vhu_state_files()
{
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$1")
}

complete -F _vhu_state vhu-state
