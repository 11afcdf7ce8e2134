//! `kubestrap completions bash|zsh|fish`: a shell completion script on stdout.
//!
//! Generated from the clap definition itself (no clap_complete in the offline registry): every
//! subcommand, option and possible value there is completed, so a new subcommand needs nothing here.
//! Options whose value is a path (`-i/--inventory`: clap infers that from `PathBuf`) complete file
//! names; options with a fixed set of values (`--output`, `--role`) complete those values.

use clap::{ArgAction, CommandFactory, ValueHint};

use crate::app::EXIT_OK;
use crate::cli::{Cli, CompletionsArgs};

/// The shells `completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn completions(a: CompletionsArgs) -> i32 {
    crate::out!("{}", script(a.shell));
    EXIT_OK
}

/// The completion script for `shell`, from the binary's own clap definition.
pub fn script(shell: Shell) -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let tree = Node::of(&cmd, Vec::new());
    match shell {
        Shell::Bash => bash(&tree),
        Shell::Zsh => zsh(&tree),
        Shell::Fish => fish(&tree),
    }
}

/// What a value completes to.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    /// Not a value-taking option.
    None,
    /// Free text (a number, a name): nothing to offer.
    Any,
    /// A file or directory name.
    Path,
    /// One of these.
    OneOf(Vec<String>),
}

#[derive(Debug)]
struct Opt {
    short: Option<char>,
    long: Option<String>,
    help: String,
    values: Values,
    repeat: bool,
}

impl Opt {
    /// `-i`, `--inventory`: every spelling.
    fn spellings(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(s) = self.short {
            v.push(format!("-{s}"));
        }
        if let Some(l) = &self.long {
            v.push(format!("--{l}"));
        }
        v
    }
}

#[derive(Debug)]
struct Pos {
    name: String,
    help: String,
    values: Values,
    /// Takes the rest of the line (after `--` for a `last` argument).
    rest: bool,
}

#[derive(Debug)]
struct Node {
    /// Subcommand names from the top, empty for the binary itself.
    path: Vec<String>,
    help: String,
    opts: Vec<Opt>,
    positionals: Vec<Pos>,
    subs: Vec<Node>,
}

/// The first sentence of a help text, on one line.
fn summary(s: Option<&clap::builder::StyledStr>) -> String {
    let s = s.map(|s| s.to_string()).unwrap_or_default();
    let line = s.lines().next().unwrap_or("").trim();
    let first = match line.find(". ") {
        Some(i) => &line[..i],
        None => line,
    };
    first.trim_end_matches('.').to_string()
}

fn values_of(arg: &clap::Arg) -> Values {
    if !arg.get_action().takes_values() {
        return Values::None;
    }
    let pv: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if !pv.is_empty() {
        return Values::OneOf(pv);
    }
    match arg.get_value_hint() {
        ValueHint::AnyPath
        | ValueHint::FilePath
        | ValueHint::DirPath
        | ValueHint::ExecutablePath => Values::Path,
        _ => Values::Any,
    }
}

impl Node {
    fn of(cmd: &clap::Command, path: Vec<String>) -> Node {
        let mut opts = Vec::new();
        let mut positionals = Vec::new();
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let help = summary(arg.get_help());
            if arg.is_positional() {
                positionals.push(Pos {
                    name: arg.get_id().to_string(),
                    help,
                    values: values_of(arg),
                    rest: arg.is_last_set() || matches!(arg.get_action(), ArgAction::Append),
                });
            } else {
                opts.push(Opt {
                    short: arg.get_short(),
                    long: arg.get_long().map(str::to_string),
                    help,
                    values: values_of(arg),
                    repeat: matches!(arg.get_action(), ArgAction::Append | ArgAction::Count),
                });
            }
        }
        let subs = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| {
                let mut p = path.clone();
                p.push(s.get_name().to_string());
                Node::of(s, p)
            })
            .collect();
        Node {
            path,
            help: summary(cmd.get_about()),
            opts,
            positionals,
            subs,
        }
    }

    fn name(&self) -> &str {
        self.path.last().map(String::as_str).unwrap_or("kubestrap")
    }

    /// `kubestrap`, `kubestrap__up`: a shell identifier for this node.
    fn id(&self) -> String {
        let mut id = String::from("kubestrap");
        for p in &self.path {
            id.push_str("__");
            id.push_str(&p.replace('-', "_"));
        }
        id
    }

    /// This node and every node below it, depth first.
    fn all(&self) -> Vec<&Node> {
        let mut v = vec![self];
        for s in &self.subs {
            v.extend(s.all());
        }
        v
    }
}

// ------------------------------------------------------------------------------------------ bash

fn bash(tree: &Node) -> String {
    let nodes = tree.all();
    let mut walk = String::new(); // how the words so far move down the tree
    let mut here = String::new(); // what to offer at the current word, per node
    for n in &nodes {
        let id = n.id();
        for s in &n.subs {
            walk.push_str(&format!(
                "            \"{id},{}\") cmd={} ;;\n",
                s.name(),
                s.id()
            ));
        }
        let valued: Vec<String> = n
            .opts
            .iter()
            .filter(|o| o.values != Values::None)
            .flat_map(|o| o.spellings())
            .map(|s| format!("\"{id},{s}\""))
            .collect();
        if !valued.is_empty() {
            walk.push_str(&format!(
                "            {}) i=$((i + 1)) ;;\n",
                valued.join(" | ")
            ));
        }

        here.push_str(&format!("        {id})\n"));
        let mut prev_cases = String::new();
        for o in n.opts.iter().filter(|o| o.values != Values::None) {
            let action = match &o.values {
                Values::Path => "_kubestrap_files".to_string(),
                Values::OneOf(v) => format!("_kubestrap_words \"{}\"", v.join(" ")),
                _ => "COMPREPLY=()".to_string(),
            };
            prev_cases.push_str(&format!(
                "                {}) {action}; return 0 ;;\n",
                o.spellings().join(" | ")
            ));
        }
        if !prev_cases.is_empty() {
            here.push_str(&format!(
                "            case \"$prev\" in\n{prev_cases}            esac\n"
            ));
        }
        let mut words: Vec<String> = n.opts.iter().flat_map(|o| o.spellings()).collect();
        words.extend(n.subs.iter().map(|s| s.name().to_string()));
        for p in &n.positionals {
            match &p.values {
                Values::OneOf(v) => words.extend(v.iter().cloned()),
                Values::Path => here.push_str("            files=1\n"),
                _ => {}
            }
        }
        here.push_str(&format!(
            "            opts=\"{}\"\n            ;;\n",
            words.join(" ")
        ));
    }
    format!(
        r#"# bash completion for kubestrap (generated by `kubestrap completions bash`)
# Install: kubestrap completions bash > ~/.local/share/bash-completion/completions/kubestrap

_kubestrap_words() {{
    mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur")
}}

_kubestrap_files() {{
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}}

_kubestrap() {{
    local cur prev cmd i opts files=0
    COMPREPLY=()
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev=""
    if ((COMP_CWORD > 0)); then prev="${{COMP_WORDS[COMP_CWORD - 1]}}"; fi
    cmd=kubestrap
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${{COMP_WORDS[i]}} == -- ]]; then
            # the rest of the line is a command for the hosts (exec): ordinary completion
            compopt -o default 2>/dev/null
            return 0
        fi
        case "$cmd,${{COMP_WORDS[i]}}" in
{walk}        esac
    done
    case "$cmd" in
{here}    esac
    if ((files)) && [[ $cur != -* ]]; then
        _kubestrap_files
        return 0
    fi
    _kubestrap_words "$opts"
}}

complete -F _kubestrap kubestrap
"#
    )
}

// ------------------------------------------------------------------------------------------- zsh

/// Text inside a zsh `_arguments` spec, itself inside single quotes.
fn zsh_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:")
}

fn zsh_action(v: &Values) -> String {
    match v {
        Values::Path => "_files".to_string(),
        Values::OneOf(v) => format!("({})", v.join(" ")),
        _ => " ".to_string(),
    }
}

fn zsh(tree: &Node) -> String {
    let mut out = String::from(
        "#compdef kubestrap\n# zsh completion for kubestrap (generated by `kubestrap completions zsh`)\n\
         # Install: kubestrap completions zsh > \"${fpath[1]}/_kubestrap\" (a directory on $fpath), then compinit\n",
    );
    for n in tree.all() {
        let id = format!("_{}", n.id());
        let mut specs: Vec<String> = Vec::new();
        for o in &n.opts {
            let excl = if o.repeat {
                "*".to_string()
            } else {
                format!("({})", o.spellings().join(" "))
            };
            let help = zsh_text(&o.help);
            let value = match &o.values {
                Values::None => String::new(),
                v => format!(":{}:{}", "value", zsh_action(v)),
            };
            if let Some(s) = o.short {
                let sep = if o.values == Values::None { "" } else { "+" };
                specs.push(format!("'{excl}-{s}{sep}[{help}]{value}'"));
            }
            if let Some(l) = &o.long {
                let sep = if o.values == Values::None { "" } else { "=" };
                specs.push(format!("'{excl}--{l}{sep}[{help}]{value}'"));
            }
        }
        for p in &n.positionals {
            let msg = zsh_text(&p.name);
            if p.rest {
                specs.push(format!("'*::{msg}:_normal'"));
            } else {
                specs.push(format!("':{msg}:{}'", zsh_action(&p.values)));
            }
        }
        if !n.subs.is_empty() {
            specs.push(format!("'1: :{id}_commands'"));
            specs.push("'*:: :->sub'".to_string());
        }
        out.push_str(&format!(
            "\n{id}() {{\n    local context curcontext=\"$curcontext\" state line\n"
        ));
        out.push_str("    _arguments -s -S -C \\\n");
        for s in &specs {
            out.push_str(&format!("        {s} \\\n"));
        }
        out.push_str("        && return 0\n");
        if !n.subs.is_empty() {
            out.push_str("    case $state in\n        sub)\n            case $words[1] in\n");
            for s in &n.subs {
                out.push_str(&format!("                ({}) _{} ;;\n", s.name(), s.id()));
            }
            out.push_str("            esac\n            ;;\n    esac\n");
        }
        out.push_str("}\n");
        if !n.subs.is_empty() {
            out.push_str(&format!(
                "\n{id}_commands() {{\n    local -a commands\n    commands=(\n"
            ));
            for s in &n.subs {
                let d = s.help.replace('\'', "'\\''");
                out.push_str(&format!("        '{}:{d}'\n", s.name().replace(':', "\\:")));
            }
            out.push_str(&format!(
                "    )\n    _describe -t commands '{} command' commands\n}}\n",
                n.name()
            ));
        }
    }
    out.push_str(
        "\nif [ \"$funcstack[1]\" = \"_kubestrap\" ]; then\n    _kubestrap \"$@\"\nelse\n    compdef _kubestrap kubestrap\nfi\n",
    );
    out
}

// ------------------------------------------------------------------------------------------ fish

/// A fish single-quoted string.
fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn fish(tree: &Node) -> String {
    let mut out = String::from(
        r#"# fish completion for kubestrap (generated by `kubestrap completions fish`)
# Install: kubestrap completions fish > ~/.config/fish/completions/kubestrap.fish

# The subcommand words on the line so far (options and their values left out).
function __kubestrap_path
    set -l path
    set -l skip 0
    set -l tokens (commandline -opc)
    set -e tokens[1]
    for t in $tokens
        if test $skip = 1
            set skip 0
        else if test "$t" = --
            break
        else if contains -- $t $__kubestrap_valued
            set skip 1
        else if not string match -q -- '-*' $t
            set path $path $t
        end
    end
    string join ' ' -- kubestrap $path
end

"#,
    );
    let valued: Vec<String> = tree
        .all()
        .iter()
        .flat_map(|n| n.opts.iter())
        .filter(|o| o.values != Values::None)
        .flat_map(|o| o.spellings())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let path_fn = "(__kubestrap_path)";
    out.push_str(&format!(
        "# Options that take a value (the word after them is not a subcommand).\nset -g __kubestrap_valued {}\n\ncomplete -c kubestrap -f\n",
        valued.join(" ")
    ));
    for n in tree.all() {
        // Options and subcommands of a node are offered when the line's subcommand words are
        // exactly its path; a leaf's also after its positional words.
        let here = std::iter::once("kubestrap")
            .chain(n.path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let cond = if n.subs.is_empty() && !n.path.is_empty() {
            format!(
                "string match -qr -- {} {path_fn}",
                fish_quote(&format!("^{here}( |$)"))
            )
        } else {
            format!("test {} = {path_fn}", fish_quote(&here))
        };
        let cond = fish_quote(&cond);
        for s in &n.subs {
            out.push_str(&format!(
                "complete -c kubestrap -n {cond} -a {} -d {}\n",
                fish_quote(s.name()),
                fish_quote(&s.help)
            ));
        }
        for o in &n.opts {
            let mut line = format!("complete -c kubestrap -n {cond}");
            if let Some(s) = o.short {
                line.push_str(&format!(" -s {s}"));
            }
            if let Some(l) = &o.long {
                line.push_str(&format!(" -l {l}"));
            }
            match &o.values {
                Values::None => {}
                Values::Any => line.push_str(" -x"),
                Values::Path => line.push_str(" -r -F"),
                Values::OneOf(v) => line.push_str(&format!(" -x -a {}", fish_quote(&v.join(" ")))),
            }
            line.push_str(&format!(" -d {}\n", fish_quote(&o.help)));
            out.push_str(&line);
        }
        for p in &n.positionals {
            match &p.values {
                Values::OneOf(v) => out.push_str(&format!(
                    "complete -c kubestrap -n {cond} -a {} -d {}\n",
                    fish_quote(&v.join(" ")),
                    fish_quote(&p.help)
                )),
                Values::Path => out.push_str(&format!("complete -c kubestrap -n {cond} -F\n")),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_has_every_subcommand_and_the_inventory_is_a_path() {
        let mut cmd = Cli::command();
        cmd.build();
        let tree = Node::of(&cmd, Vec::new());
        let names: Vec<&str> = tree.subs.iter().map(|s| s.name()).collect();
        for c in cmd.get_subcommands() {
            assert!(names.contains(&c.get_name()), "{names:?}");
        }
        let up = tree.subs.iter().find(|s| s.name() == "up").unwrap();
        let inv = up
            .opts
            .iter()
            .find(|o| o.long.as_deref() == Some("inventory"))
            .unwrap();
        assert_eq!(inv.short, Some('i'));
        assert_eq!(inv.values, Values::Path);
        let output = up
            .opts
            .iter()
            .find(|o| o.long.as_deref() == Some("output"))
            .unwrap();
        assert_eq!(
            output.values,
            Values::OneOf(vec!["text".into(), "json".into()])
        );
        let comp = tree
            .subs
            .iter()
            .find(|s| s.name() == "completions")
            .unwrap();
        assert_eq!(
            comp.positionals[0].values,
            Values::OneOf(vec!["bash".into(), "zsh".into(), "fish".into()])
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(zsh_text("a [b]: c's"), "a \\[b\\]\\: c'\\''s");
        assert_eq!(fish_quote("it's \\ ok"), "'it\\'s \\\\ ok'");
        assert_eq!(summary(None), "");
    }
}
