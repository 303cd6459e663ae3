//! The layer check: src/ is a one-way house. Every `crate::`, `super::` and `self::` path in the
//! library (in `use` trees, groups included, and inline in code, types and macro arguments), and
//! every path through a child module (`load::run` in the module that declares `mod load`), is an
//! edge from its file to the file of the module it names. The check fails on a cycle between
//! files and on an edge that runs up the layer table below. The fixture under
//! `tests/fixtures/layers/` proves that it does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// The layers of src/, lowest first. A module may use modules of its own layer (without a cycle)
/// and of the layers below it, never one above. Each module is named by its path below the crate
/// root (the longest listed prefix decides); a module that is not listed fails the check, so
/// this table stays the whole picture. The crate root (`lib.rs`) is above everything.
const LAYERS: &[(&str, &[&str])] = &[
    // Domain types and process-wide basics: they depend on nothing of pgkeep.
    ("domain", &["model", "exit", "shutdown", "fault"]),
    // Settings: parses its inputs into domain types.
    ("config", &["config"]),
    // Infrastructure: talks to PostgreSQL, child processes, files; knows nothing of commands.
    (
        "infrastructure",
        &["process", "storage", "lock", "pipeline", "pg", "catalog"],
    ),
    // Services every higher layer may use: webhooks, human-readable sizes, times and events.
    ("services", &["notify", "report"]),
    // The engine: what a backup, restore, verification, culling and health check do.
    (
        "engine",
        &[
            "backup",
            "restore",
            "verify",
            "prune",
            "retention",
            "check",
            "cluster",
            "databases",
            "globals",
            "copy",
            "status",
        ],
    ),
    // Long-running servers: the daemon and the maintenance page.
    ("servers", &["daemon", "maintenance"]),
    // The command line's definitions (clap).
    ("interface", &["cli"]),
    // One file per verb: settings in, engine calls, rendering out; the only code that prints.
    ("app", &["app"]),
];

/// `PGKEEP_LAYERS_SRC=DIR` runs the check on another tree (say, to count the files in cycles
/// before a change); by default it is this crate's `src/`.
#[test]
fn src_is_a_one_way_house() {
    let root = std::env::var_os("PGKEEP_LAYERS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let krate = Crate::load(&root.join("lib.rs")).expect("src/ parses");
    let found = check(&krate, LAYERS);
    println!(
        "{} files, {} edges between them; layers (lowest first): {}",
        krate.files.len(),
        krate.edges().len(),
        LAYERS
            .iter()
            .map(|(name, modules)| format!("{name} [{}]", modules.join(", ")))
            .collect::<Vec<_>>()
            .join(" < ")
    );
    assert!(
        found.is_empty(),
        "the layer check failed ({} problems):\n{}",
        found.len(),
        found
            .iter()
            .map(|v| format!("  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The fixture breaks both rules: `ring/` is a cycle of three files (mod.rs re-exports from a.rs,
/// a.rs calls b.rs through `super::`, b.rs names the re-export through `crate::ring`), and
/// `low.rs` calls up into `high.rs` from inside a `format!`.
#[test]
fn the_check_reports_a_cycle_and_an_upward_edge() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layers/cycle");
    let krate = Crate::load(&dir.join("lib.rs")).expect("the fixture parses");
    let layers: &[(&str, &[&str])] = &[("low", &["base", "low"]), ("high", &["high", "ring"])];
    let found = check(&krate, layers);
    let text: Vec<String> = found.iter().map(|v| v.to_string()).collect();
    assert_eq!(found.len(), 2, "{text:#?}");
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::Cycle { files, .. }
            if files == &["ring/a.rs", "ring/b.rs", "ring/mod.rs"])),
        "{text:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::Upward { from, to, .. }
            if from == "low.rs" && to == "high.rs")),
        "{text:#?}"
    );
    // Groups in `use` lines count: `use crate::{base, ring::a}` in high.rs names both.
    let edges = krate.edges();
    for (from, to) in [("high.rs", "base.rs"), ("high.rs", "ring/a.rs")] {
        assert!(
            edges
                .keys()
                .any(|(f, t)| krate.files[*f].rel == from && krate.files[*t].rel == to),
            "no edge {from} -> {to}"
        );
    }
}

/// A problem the check found.
#[derive(Debug)]
enum Violation {
    /// Files that reach each other through their paths.
    Cycle {
        files: Vec<String>,
        edges: Vec<String>,
    },
    /// A path from a lower layer into a higher one.
    Upward {
        from: String,
        to: String,
        line: usize,
        path: String,
        from_layer: &'static str,
        to_layer: &'static str,
    },
    /// A module the layer table does not place.
    Unranked { file: String, module: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Cycle { files, edges } => write!(
                f,
                "cycle between {} files: {} (edges: {})",
                files.len(),
                files.join(", "),
                edges.join("; ")
            ),
            Violation::Upward {
                from,
                to,
                line,
                path,
                from_layer,
                to_layer,
            } => write!(
                f,
                "upward edge: {from}:{line} uses `{path}` ({to}): layer {from_layer} may not use layer {to_layer}"
            ),
            Violation::Unranked { file, module } => write!(
                f,
                "{file}: module `{module}` is in no layer of the table in tests/layers.rs"
            ),
        }
    }
}

/// Run both rules over a loaded crate.
fn check(krate: &Crate, layers: &[(&'static str, &[&str])]) -> Vec<Violation> {
    let mut out = Vec::new();
    let edges = krate.edges();
    for scc in strongly_connected(krate.files.len(), &edges) {
        if scc.len() < 2 {
            continue;
        }
        let mut files: Vec<String> = scc.iter().map(|&i| krate.files[i].rel.clone()).collect();
        files.sort();
        let inside: BTreeSet<usize> = scc.iter().copied().collect();
        let edges = edges
            .iter()
            .filter(|((f, t), _)| inside.contains(f) && inside.contains(t))
            .map(|((f, t), r)| {
                format!(
                    "{}:{} -> {} via `{}`",
                    krate.files[*f].rel, r.line, krate.files[*t].rel, r.text
                )
            })
            .collect();
        out.push(Violation::Cycle { files, edges });
    }
    let rank = |module: &[String]| -> Option<(usize, &'static str)> {
        if module.is_empty() {
            return Some((layers.len(), "root"));
        }
        let mut best: Option<(usize, usize, &'static str)> = None;
        for (rank, (name, prefixes)) in layers.iter().enumerate() {
            for p in prefixes.iter() {
                let p: Vec<&str> = p.split("::").collect();
                let matches = p.len() <= module.len() && p.iter().zip(module).all(|(a, b)| a == b);
                if matches && best.is_none_or(|(len, _, _)| p.len() > len) {
                    best = Some((p.len(), rank, name));
                }
            }
        }
        best.map(|(_, rank, name)| (rank, name))
    };
    for file in &krate.files {
        if rank(&file.module).is_none() {
            out.push(Violation::Unranked {
                file: file.rel.clone(),
                module: file.module.join("::"),
            });
        }
    }
    for ((f, t), r) in &edges {
        let (from, to) = (&krate.files[*f], &krate.files[*t]);
        if let (Some((rf, from_layer)), Some((rt, to_layer))) =
            (rank(&from.module), rank(&to.module))
            && rt > rf
        {
            out.push(Violation::Upward {
                from: from.rel.clone(),
                to: to.rel.clone(),
                line: r.line,
                path: r.text.clone(),
                from_layer,
                to_layer,
            });
        }
    }
    out
}

/// Tarjan's algorithm: the strongly connected components of the file graph.
fn strongly_connected(n: usize, edges: &BTreeMap<(usize, usize), Ref>) -> Vec<Vec<usize>> {
    struct State<'a> {
        next: Vec<Vec<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        out: &'a mut Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for w in s.next[v].clone() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(i) if s.on_stack[w] => s.low[v] = s.low[v].min(i),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(scc);
        }
    }
    let mut next = vec![Vec::new(); n];
    for (f, t) in edges.keys() {
        next[*f].push(*t);
    }
    let mut out = Vec::new();
    let mut s = State {
        next,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        out: &mut out,
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    out
}

/// One source file of the crate.
struct SourceFile {
    /// The path below the crate's directory, e.g. `restore/plan.rs`.
    rel: String,
    /// Its path on disk.
    path: PathBuf,
    /// Its module path below the crate root (empty for the root).
    module: Vec<String>,
    /// Compiled only for tests (`#[cfg(test)] mod tests;`).
    test: bool,
    ast: syn::File,
}

/// The files of a crate, found by following its `mod` declarations from the root.
struct Crate {
    files: Vec<SourceFile>,
    /// Every module (file or inline) and the file that holds it.
    modules: BTreeMap<Vec<String>, usize>,
}

impl Crate {
    fn load(root: &Path) -> Result<Crate, String> {
        let mut krate = Crate {
            files: Vec::new(),
            modules: BTreeMap::new(),
        };
        let base = root.parent().expect("the root file has a directory");
        krate.load_file(base, root, Vec::new(), false)?;
        Ok(krate)
    }

    fn load_file(
        &mut self,
        base: &Path,
        path: &Path,
        module: Vec<String>,
        test: bool,
    ) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let ast = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let index = self.files.len();
        let rel = path
            .strip_prefix(base)
            .unwrap_or(path)
            .display()
            .to_string();
        self.modules.insert(module.clone(), index);
        // Children of `lib.rs` and `x/mod.rs` live beside them; those of `x.rs` in `x/`.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir: PathBuf = if matches!(name, "lib.rs" | "mod.rs" | "main.rs") {
            path.parent().expect("a directory").to_path_buf()
        } else {
            path.with_extension("")
        };
        let items = ast.items.clone();
        self.files.push(SourceFile {
            rel,
            path: path.to_path_buf(),
            module: module.clone(),
            test,
            ast,
        });
        self.load_items(base, &dir, &items, &module, index, test)
    }

    fn load_items(
        &mut self,
        base: &Path,
        dir: &Path,
        items: &[syn::Item],
        module: &[String],
        file: usize,
        test: bool,
    ) -> Result<(), String> {
        for item in items {
            let syn::Item::Mod(m) = item else { continue };
            let mut child = module.to_vec();
            child.push(m.ident.to_string());
            let test = test || is_test(&m.attrs);
            match &m.content {
                Some((_, inner)) => {
                    self.modules.insert(child.clone(), file);
                    self.load_items(
                        base,
                        &dir.join(m.ident.to_string()),
                        inner,
                        &child,
                        file,
                        test,
                    )?;
                }
                None => {
                    let name = m.ident.to_string();
                    if let Some(path) = path_attr(&m.attrs) {
                        // `#[path]` is relative to the directory of the declaring file.
                        let here = self.dir_of(file);
                        self.load_file(base, &here.join(path), child, test)?;
                        continue;
                    }
                    let candidates = [
                        dir.join(format!("{name}.rs")),
                        dir.join(&name).join("mod.rs"),
                    ];
                    let found = candidates
                        .iter()
                        .find(|p| p.is_file())
                        .ok_or_else(|| format!("no file for `mod {name}` in {}", dir.display()))?;
                    self.load_file(base, &found.clone(), child, test)?;
                }
            }
        }
        Ok(())
    }

    /// The directory of a loaded file.
    fn dir_of(&self, file: usize) -> PathBuf {
        let root = &self.files[0].path;
        let base = root.parent().expect("a directory");
        base.join(&self.files[file].rel)
            .parent()
            .expect("a directory")
            .to_path_buf()
    }

    /// The file that holds the module a path (below the crate root) names: the longest prefix
    /// of the path that is a module.
    fn file_of(&self, path: &[String]) -> usize {
        (0..=path.len())
            .rev()
            .find_map(|n| self.modules.get(&path[..n]).copied())
            .unwrap_or(0)
    }

    /// The edges between files, each with the first reference that makes it.
    fn edges(&self) -> BTreeMap<(usize, usize), Ref> {
        let mut edges = BTreeMap::new();
        for (i, file) in self.files.iter().enumerate() {
            let mut refs = Refs {
                krate: self,
                module: file.module.clone(),
                out: Vec::new(),
            };
            refs.visit_file(&file.ast);
            for r in refs.out {
                let target = self.file_of(&r.target);
                if target != i {
                    edges.entry((i, target)).or_insert(r);
                }
            }
        }
        edges
    }
}

/// A reference to a module of the crate.
#[derive(Debug, Clone)]
struct Ref {
    /// The path it names, below the crate root.
    target: Vec<String>,
    line: usize,
    /// The path as written.
    text: String,
}

/// Collects the references of one file.
struct Refs<'a> {
    krate: &'a Crate,
    /// The module being visited (inline modules included).
    module: Vec<String>,
    out: Vec<Ref>,
}

impl Refs<'_> {
    /// Resolve a path as written to a path below the crate root; `None` for other crates, local
    /// names and std.
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.clone(),
            "super" => {
                let mut m = self.module.clone();
                m.pop()?;
                let mut rest = rest;
                while rest.first().map(String::as_str) == Some("super") {
                    m.pop()?;
                    rest = &rest[1..];
                }
                m.extend(rest.iter().cloned());
                return Some(m);
            }
            _ => {
                let mut child = self.module.clone();
                child.push(first.clone());
                if !self.krate.modules.contains_key(&child) {
                    return None;
                }
                child
            }
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn record(&mut self, segments: &[String], line: usize) {
        if let Some(target) = self.resolve(segments) {
            self.out.push(Ref {
                target,
                line,
                text: segments.join("::"),
            });
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.use_leaf(prefix, &r.ident),
            syn::UseTree::Glob(g) => {
                let line = g.star_token.spans[0].start().line;
                self.record(&prefix.clone(), line);
            }
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], ident: &syn::Ident) {
        let mut path = prefix.to_vec();
        if ident != "self" {
            path.push(ident.to_string());
        }
        self.record(&path, ident.span().start().line);
    }

    /// Paths inside a macro's arguments (`format!("{}", crate::report::human_bytes(n))`), which
    /// syn keeps as tokens.
    fn tokens(&mut self, tokens: TokenStream) {
        let flat: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < flat.len() {
            match &flat[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) => {
                    let after_colons =
                        i >= 1 && matches!(&flat[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (flat.get(j), flat.get(j + 1), flat.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if !after_colons && segments.len() >= 2 {
                        self.record(&segments, id.span().start().line);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.module.push(m.ident.to_string());
        visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() && p.segments.len() >= 2 {
            let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            let line = p.segments[0].ident.span().start().line;
            self.record(&segments, line);
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        visit::visit_macro(self, m);
    }
}

/// Functions longer than this many lines (outside tests) fail the size check.
const MAX_FN_LINES: usize = 100;
/// Files longer than this fail it.
const MAX_FILE_LINES: usize = 800;
/// Known exceptions, each with the reason it is allowed to stay for now.
const SIZE_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "config/load.rs::from_values",
        "replaced by the key table, where each key's parser is declared once",
    ),
    (
        "config/show.rs::show",
        "replaced by the key table, where each key's display is declared once",
    ),
];

#[test]
fn every_module_says_why_it_exists_and_stays_small() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let krate = Crate::load(&root.join("lib.rs")).expect("src/ parses");
    let mut problems = Vec::new();
    let mut files: Vec<(usize, String)> = Vec::new();
    let mut fns: Vec<(usize, String)> = Vec::new();
    for file in &krate.files {
        let text = std::fs::read_to_string(root.join(&file.rel)).expect("readable");
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{}: does not start with a `//!` line", file.rel));
        }
        files.push((text.lines().count(), file.rel.clone()));
        if !file.test {
            let mut lengths = FnLengths {
                file: &file.rel,
                out: &mut fns,
            };
            lengths.visit_file(&file.ast);
        }
    }
    files.sort_by(|a, b| b.cmp(a));
    fns.sort_by(|a, b| b.cmp(a));
    println!("largest files: {:?}", &files[..5.min(files.len())]);
    println!("largest functions: {:?}", &fns[..5.min(fns.len())]);
    let excepted = |name: &str| SIZE_EXCEPTIONS.iter().any(|(n, _)| *n == name);
    for (n, f) in &files {
        if *n > MAX_FILE_LINES && !excepted(f) {
            problems.push(format!("{f}: {n} lines (at most {MAX_FILE_LINES})"));
        }
    }
    for (n, f) in &fns {
        if *n > MAX_FN_LINES && !excepted(f) {
            problems.push(format!("{f}: {n} lines (at most {MAX_FN_LINES})"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The length of every function outside test code, as `(lines, "file::name")`.
struct FnLengths<'a> {
    file: &'a str,
    out: &'a mut Vec<(usize, String)>,
}

/// The value of a `#[path = "..."]` attribute.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
    })
}

impl FnLengths<'_> {
    fn push(&mut self, name: &syn::Ident, first: usize, last: usize) {
        self.out
            .push((last + 1 - first, format!("{}::{name}", self.file)));
    }
}

impl<'ast> Visit<'ast> for FnLengths<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test(&f.attrs) {
            let first = f.sig.fn_token.span.start().line;
            self.push(
                &f.sig.ident,
                first,
                f.block.brace_token.span.close().end().line,
            );
            visit::visit_item_fn(self, f);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        let first = f.sig.fn_token.span.start().line;
        self.push(
            &f.sig.ident,
            first,
            f.block.brace_token.span.close().end().line,
        );
        visit::visit_impl_item_fn(self, f);
    }
}

/// Every error type (`#[derive(Error)]`) says its exit code through `exit::ExitCode`, with a
/// `match` that names every variant (no `_ =>` arm, so a new variant is a compile error until
/// someone decides its code), and is in the registry that `app::exit_code` asks.
#[test]
fn every_error_type_carries_its_exit_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let krate = Crate::load(&root.join("lib.rs")).expect("src/ parses");
    let mut errors = ErrorTypes::default();
    for file in krate.files.iter().filter(|f| !f.test) {
        errors.file = file.rel.clone();
        errors.visit_file(&file.ast);
    }
    let registry = krate
        .files
        .iter()
        .find(|f| f.rel == "app/errors.rs")
        .expect("app/errors.rs holds the registry");
    let mut probes = Probes::default();
    probes.visit_file(&registry.ast);
    let mut problems = errors.wildcards.clone();
    for (name, file) in &errors.derived {
        if !errors.implemented.contains(name) {
            problems.push(format!("{file}: {name} does not implement exit::ExitCode"));
        }
        if !probes.0.contains(name) {
            problems.push(format!(
                "{file}: {name} is not in the registry of app/errors.rs (probe::<{name}>)"
            ));
        }
    }
    assert!(!errors.derived.is_empty());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[derive(Default)]
struct ErrorTypes {
    file: String,
    /// Types deriving `Error`, with their file.
    derived: BTreeMap<String, String>,
    implemented: BTreeSet<String>,
    wildcards: Vec<String>,
}

impl ErrorTypes {
    fn derives_error(&mut self, attrs: &[syn::Attribute], ident: &syn::Ident) {
        for a in attrs.iter().filter(|a| a.path().is_ident("derive")) {
            let mut is_error = false;
            let _ = a.parse_nested_meta(|m| {
                is_error |= m.path.segments.last().is_some_and(|s| s.ident == "Error");
                Ok(())
            });
            if is_error {
                self.derived.insert(ident.to_string(), self.file.clone());
            }
        }
    }
}

impl<'ast> Visit<'ast> for ErrorTypes {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_enum(&mut self, e: &'ast syn::ItemEnum) {
        self.derives_error(&e.attrs, &e.ident);
    }

    fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
        self.derives_error(&s.attrs, &s.ident);
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let Some((_, trait_path, _)) = &i.trait_ else {
            return;
        };
        if trait_path
            .segments
            .last()
            .is_none_or(|s| s.ident != "ExitCode")
        {
            return;
        }
        if let syn::Type::Path(t) = &*i.self_ty
            && let Some(last) = t.path.segments.last()
        {
            self.implemented.insert(last.ident.to_string());
            let mut arms = WildArms(Vec::new());
            arms.visit_item_impl(i);
            for line in arms.0 {
                self.wildcards.push(format!(
                    "{}:{line}: a `_ =>` arm in the exit code of {}: name the variants",
                    self.file, last.ident
                ));
            }
        }
    }
}

/// Lines of `_ =>` match arms.
struct WildArms(Vec<usize>);

impl<'ast> Visit<'ast> for WildArms {
    fn visit_arm(&mut self, a: &'ast syn::Arm) {
        if let syn::Pat::Wild(w) = &a.pat {
            self.0.push(w.underscore_token.span.start().line);
        }
        visit::visit_arm(self, a);
    }
}

/// The types named as `probe::<T>`.
#[derive(Default)]
struct Probes(BTreeSet<String>);

impl<'ast> Visit<'ast> for Probes {
    fn visit_path_segment(&mut self, s: &'ast syn::PathSegment) {
        if s.ident == "probe"
            && let syn::PathArguments::AngleBracketed(args) = &s.arguments
        {
            for arg in &args.args {
                if let syn::GenericArgument::Type(syn::Type::Path(t)) = arg
                    && let Some(last) = t.path.segments.last()
                {
                    self.0.insert(last.ident.to_string());
                }
            }
        }
        visit::visit_path_segment(self, s);
    }
}

/// Only the command layer writes to stdout or stderr or ends the process: every other layer
/// returns values and typed errors (logs go through `tracing`).
#[test]
fn only_the_app_layer_prints_or_exits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let krate = Crate::load(&root.join("lib.rs")).expect("src/ parses");
    let mut found = Vec::new();
    for file in krate.files.iter().filter(|f| !f.test) {
        if file.module.first().map(String::as_str) == Some("app") {
            continue;
        }
        let mut v = Prints {
            file: &file.rel,
            out: &mut found,
        };
        v.visit_file(&file.ast);
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

struct Prints<'a> {
    file: &'a str,
    out: &'a mut Vec<String>,
}

impl<'ast> Visit<'ast> for Prints<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            visit::visit_item_mod(self, m);
        }
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if let Some(last) = m.path.segments.last()
            && ["print", "println", "eprint", "eprintln", "dbg"]
                .contains(&last.ident.to_string().as_str())
        {
            self.out.push(format!(
                "{}:{}: `{}!` outside the app layer",
                self.file,
                last.ident.span().start().line,
                last.ident
            ));
        }
        visit::visit_macro(self, m);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let names: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if names.ends_with(&["process".to_string(), "exit".to_string()]) {
            self.out.push(format!(
                "{}:{}: `process::exit` outside the app layer",
                self.file,
                p.segments[0].ident.span().start().line
            ));
        }
        visit::visit_path(self, p);
    }
}
