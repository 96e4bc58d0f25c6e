//! Completion scripts for bash, zsh and fish, written from the clap commands: the applet
//! names, each applet's options and subcommands, the values an option takes (a fixed list,
//! a directory, a file).
//!
//! The scripts complete `rtool APPLET …`; bash and zsh also complete an applet called
//! through a link named after it (`doctor --ro<TAB>`) once the script is loaded.

use clap::{Arg, Command, ValueHint};

use crate::applet::SHADOWING;

/// The applet names a link may carry, for the shells that complete links too: not those that
/// would take over the completion of the system's own `chroot`, `modprobe` and `rmmod`.
fn link_names(root: &Node) -> Vec<&str> {
    root.subs
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| *n != "help" && !SHADOWING.contains(n))
        .collect()
}

/// An option, as a shell needs it.
struct Opt {
    short: Option<char>,
    long: Option<String>,
    /// Takes a value.
    takes: bool,
    /// Values it can take, when they are a fixed list.
    values: Vec<String>,
    /// Its value is a directory (else a file, when it takes one).
    dir: bool,
    help: String,
}

/// A command: `rtool` itself, an applet or an applet's subcommand.
struct Node {
    name: String,
    help: String,
    opts: Vec<Opt>,
    subs: Vec<Node>,
}

fn opt(a: &Arg) -> Opt {
    let takes = a.get_action().takes_values();
    let values = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    let dir = a.get_value_hint() == ValueHint::DirPath
        || a.get_value_names()
            .is_some_and(|v| v.iter().any(|n| n.as_str() == "DIR"));
    Opt {
        short: a.get_short(),
        long: a.get_long().map(str::to_string),
        takes,
        values,
        dir,
        help: a
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn flag(short: char, long: &str, help: &str) -> Opt {
    Opt {
        short: Some(short),
        long: Some(long.to_string()),
        takes: false,
        values: Vec::new(),
        dir: false,
        help: help.to_string(),
    }
}

/// `globals`: the options a parent command marks global, which its subcommands take too.
fn node(cmd: &Command, top: bool, globals: &[&Arg]) -> Node {
    let own: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .collect();
    let mut opts: Vec<Opt> = own.iter().chain(globals).map(|a| opt(a)).collect();
    let inherited: Vec<&Arg> = own
        .iter()
        .copied()
        .filter(|a| a.is_global_set())
        .chain(globals.iter().copied())
        .collect();
    opts.push(flag('h', "help", "Print help"));
    if top {
        opts.push(flag('V', "version", "Print the version"));
    }
    Node {
        name: cmd.get_name().to_string(),
        help: cmd.get_about().map(|t| t.to_string()).unwrap_or_default(),
        opts,
        subs: cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| node(s, false, &inherited))
            .collect(),
    }
}

/// The words an option is spelled with (`-r`, `--root`).
fn spellings(o: &Opt) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(s) = o.short {
        v.push(format!("-{s}"));
    }
    if let Some(l) = &o.long {
        v.push(format!("--{l}"));
    }
    v
}

/// `s` inside single quotes for bash and zsh.
fn sq(s: &str) -> String {
    s.replace('\'', "'\\''")
}

pub fn bash(tree: &Command) -> String {
    let root = node(tree, true, &[]);
    let mut s = String::from(
        "# bash completion for rtool (rtool --generate bash)\n\
         _rtool() {\n\
         \x20   local cur=${COMP_WORDS[COMP_CWORD]} prev=\n\
         \x20   (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}\n\
         \x20   local cmd=${COMP_WORDS[0]##*/} key= sub= i w opts= vals= dirs= subs=\n\
         \x20   [[ $cmd != rtool ]] && key=$cmd\n\
         \x20   for (( i = 1; i < COMP_CWORD; i++ )); do\n\
         \x20       w=${COMP_WORDS[i]}\n\
         \x20       [[ $w == -* ]] && continue\n\
         \x20       if [[ -z $key ]]; then key=$w\n\
         \x20       elif [[ -z $sub && \" $(_rtool_subs \"$key\") \" == *\" $w \"* ]]; then sub=$w; key=\"$key $w\"\n\
         \x20       fi\n\
         \x20   done\n\
         \x20   case $key in\n",
    );
    let mut subs_fn = String::from("_rtool_subs() {\n    case $1 in\n");
    let mut values = String::new();
    let emit = |key: &str, n: &Node, s: &mut String, values: &mut String| {
        let opts: Vec<String> = n.opts.iter().flat_map(spellings).collect();
        let vals: Vec<String> = n
            .opts
            .iter()
            .filter(|o| o.takes)
            .flat_map(spellings)
            .collect();
        let dirs: Vec<String> = n
            .opts
            .iter()
            .filter(|o| o.takes && o.dir)
            .flat_map(spellings)
            .collect();
        let subs: Vec<&str> = n.subs.iter().map(|c| c.name.as_str()).collect();
        s.push_str(&format!(
            "        {}) opts='{}' vals='{}' dirs='{}' subs='{}' ;;\n",
            bash_pattern(key),
            opts.join(" "),
            vals.join(" "),
            dirs.join(" "),
            subs.join(" ")
        ));
        for o in n.opts.iter().filter(|o| !o.values.is_empty()) {
            for sp in spellings(o) {
                values.push_str(&format!(
                    "        {}) COMPREPLY=($(compgen -W '{}' -- \"$cur\")); return ;;\n",
                    bash_pattern(&format!("{key}/{sp}")),
                    sq(&o.values.join(" "))
                ));
            }
        }
    };
    emit("", &root, &mut s, &mut values);
    let applets: Vec<&str> = root.subs.iter().map(|c| c.name.as_str()).collect();
    for a in &root.subs {
        emit(&a.name, a, &mut s, &mut values);
        if !a.subs.is_empty() {
            let names: Vec<&str> = a.subs.iter().map(|c| c.name.as_str()).collect();
            subs_fn.push_str(&format!(
                "        {}) echo '{}' ;;\n",
                a.name,
                names.join(" ")
            ));
        }
        for sub in &a.subs {
            emit(
                &format!("{} {}", a.name, sub.name),
                sub,
                &mut s,
                &mut values,
            );
        }
    }
    s.push_str("        *) ;;\n    esac\n");
    s.push_str("    case $key/$prev in\n");
    s.push_str(&values);
    s.push_str("    esac\n");
    s.push_str(&format!(
        "    if [[ -n $prev && \" $vals \" == *\" $prev \"* ]]; then\n\
         \x20       if [[ \" $dirs \" == *\" $prev \"* ]]; then COMPREPLY=($(compgen -d -- \"$cur\"))\n\
         \x20       else COMPREPLY=($(compgen -f -- \"$cur\")); fi\n\
         \x20       return\n\
         \x20   fi\n\
         \x20   if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n\
         \x20   elif [[ -z $key ]]; then COMPREPLY=($(compgen -W '{}' -- \"$cur\"))\n\
         \x20   elif [[ -n $subs && -z $sub ]]; then COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n\
         \x20   else COMPREPLY=($(compgen -f -- \"$cur\")); fi\n\
         }}\n",
        applets.join(" ")
    ));
    subs_fn.push_str("    esac\n}\n");
    s.push_str(&subs_fn);
    s.push_str(&format!(
        "complete -o filenames -F _rtool rtool {}\n",
        link_names(&root).join(" ")
    ));
    s
}

/// A `case` pattern matching `key` literally.
fn bash_pattern(key: &str) -> String {
    if key.is_empty() {
        "''".to_string()
    } else {
        format!("'{}'", sq(key))
    }
}

/// `s` escaped for a zsh `_arguments` description (inside `[…]`, itself in single quotes).
fn zdesc(s: &str) -> String {
    sq(&s
        .replace('\\', "\\\\")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:"))
}

fn zsh_args(n: &Node) -> String {
    let mut specs = Vec::new();
    for o in &n.opts {
        let sp = spellings(o);
        let names = if sp.len() > 1 {
            format!("'({})'{{{}}}", sp.join(" "), sp.join(","))
        } else {
            sp.join("")
        };
        let action = if !o.takes {
            String::new()
        } else if !o.values.is_empty() {
            format!(":value:({})", sq(&o.values.join(" ")))
        } else if o.dir {
            ":directory:_files -/".to_string()
        } else {
            ":file:_files".to_string()
        };
        // `'(-r --root)'{-r,--root}'[…]…'`: the braces expand outside the quotes.
        if sp.len() > 1 {
            specs.push(format!("{names}'[{}]{action}'", zdesc(&o.help)));
        } else {
            specs.push(format!("'{names}[{}]{action}'", zdesc(&o.help)));
        }
    }
    specs.push("'*:file:_files'".to_string());
    specs.join(" \\\n            ")
}

/// At the first word, the names in `nodes` with their help, as `_describe` offers them.
fn zsh_describe(kind: &str, var: &str, nodes: &[Node]) -> String {
    let items: String = nodes
        .iter()
        .map(|n| {
            format!(
                "                '{}:{}'\n",
                n.name,
                sq(&n.help.replace(':', "\\:"))
            )
        })
        .collect();
    format!(
        "        if (( CURRENT == 2 )) && [[ $PREFIX != -* ]]; then\n            local -a {var}=(\n\
         {items}            )\n            _describe {kind} {var}; return\n        fi\n"
    )
}

pub fn zsh(tree: &Command) -> String {
    let root = node(tree, true, &[]);
    let mut s = String::from(
        "#compdef rtool\n# zsh completion for rtool (rtool --generate zsh)\n\n_rtool() {\n\
         \x20   local applet=${words[1]:t} shift=1\n\
         \x20   if [[ $applet == rtool ]]; then\n",
    );
    s.push_str(&zsh_describe("applet", "applets", &root.subs));
    s.push_str("        (( CURRENT == 2 )) && { _arguments ");
    s.push_str(&zsh_args(&root));
    s.push_str(
        "; return }\n        applet=${words[2]}; shift=2\n    fi\n\
         \x20   (( CURRENT -= shift - 1 )); words=(${words[shift,-1]})\n\
         \x20   case $applet in\n",
    );
    for a in &root.subs {
        s.push_str(&format!("    {})\n", a.name));
        if a.subs.is_empty() {
            s.push_str(&format!("        _arguments {} ;;\n", zsh_args(a)));
            continue;
        }
        s.push_str(&zsh_describe("subcommand", "subs", &a.subs));
        s.push_str("        case ${words[2]} in\n");
        for sub in &a.subs {
            s.push_str(&format!(
                "        {})\n            (( CURRENT -= 1 )); words=(${{words[2,-1]}})\n            _arguments {} ;;\n",
                sub.name,
                zsh_args(sub)
            ));
        }
        s.push_str(&format!(
            "        *) _arguments {} ;;\n        esac ;;\n",
            zsh_args(a)
        ));
    }
    s.push_str("    esac\n}\n\n");
    let links = link_names(&root).join(" ");
    s = s.replacen("#compdef rtool\n", &format!("#compdef rtool {links}\n"), 1);
    s.push_str(&format!(
        "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n\
         \x20   _rtool \"$@\"\nelse\n    compdef _rtool rtool {links}\nfi\n"
    ));
    s
}

/// `s` in fish's single quotes.
fn fq(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn fish_opts(s: &mut String, cond: &str, n: &Node) {
    for o in &n.opts {
        let mut line = format!("complete -c rtool -n {}", fq(cond));
        if let Some(c) = o.short {
            line.push_str(&format!(" -s {c}"));
        }
        if let Some(l) = &o.long {
            line.push_str(&format!(" -l {l}"));
        }
        if o.takes {
            line.push_str(" -r");
            if !o.values.is_empty() {
                line.push_str(&format!(" -f -a {}", fq(&o.values.join(" "))));
            } else if o.dir {
                line.push_str(" -f -a '(__fish_complete_directories)'");
            } else {
                line.push_str(" -F");
            }
        }
        if !o.help.is_empty() {
            line.push_str(&format!(" -d {}", fq(&o.help)));
        }
        s.push_str(&line);
        s.push('\n');
    }
}

pub fn fish(tree: &Command) -> String {
    let root = node(tree, true, &[]);
    let mut s = String::from("# fish completion for rtool (rtool --generate fish)\n");
    fish_opts(&mut s, "__fish_use_subcommand", &root);
    for a in &root.subs {
        s.push_str(&format!(
            "complete -c rtool -n __fish_use_subcommand -f -a {} -d {}\n",
            a.name,
            fq(&a.help)
        ));
    }
    for a in &root.subs {
        let inside = format!("__fish_seen_subcommand_from {}", a.name);
        if a.subs.is_empty() {
            fish_opts(&mut s, &inside, a);
            continue;
        }
        let names: Vec<&str> = a.subs.iter().map(|c| c.name.as_str()).collect();
        let before = format!(
            "{inside}; and not __fish_seen_subcommand_from {}",
            names.join(" ")
        );
        fish_opts(&mut s, &before, a);
        for sub in &a.subs {
            s.push_str(&format!(
                "complete -c rtool -n {} -f -a {} -d {}\n",
                fq(&before),
                sub.name,
                fq(&sub.help)
            ));
            let cond = format!("{inside}; and __fish_seen_subcommand_from {}", sub.name);
            fish_opts(&mut s, &cond, sub);
        }
    }
    s
}
