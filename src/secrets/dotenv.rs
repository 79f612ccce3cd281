//! A `.env` file read with `dotenvy` (comments, `export `, single and double quotes, escapes, multi-line
//! double-quoted values, `${VAR}` substitution in unquoted and double-quoted values).
//!
//! dotenvy's parse errors quote the offending line, which may hold a value: they are turned into a line
//! number and, when the line starts like `NAME=`, that name, and nothing else.

use crate::error::{fail, Kind};
use crate::secret::Secret;
use anyhow::Result;
use std::path::Path;

/// What a `.env` file holds: its entries in file order, and the lines that are not `NAME=VALUE`.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<(String, Secret)>,
    /// Lines dotenvy refused: (line number, the name before `=` when there is one).
    pub refused: Vec<(usize, Option<String>)>,
}

pub fn read(path: &Path) -> Result<Parsed> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            Kind::NoInput
        } else {
            Kind::Data
        };
        fail(kind, format!("cannot read {}: {e}", path.display()))
            .help("pass the .env file to sync with --env-file PATH (UTF-8 text)")
    })?;
    Ok(parse(&text))
}

pub fn parse(text: &str) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Parsed::default();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((k, v)) => out.entries.push((k, Secret::new(v))),
            Err(dotenvy::Error::LineParse(line, _)) => {
                let first = line.lines().next().unwrap_or("").trim_end();
                let number = text
                    .find(first)
                    .map(|at| text[..at].matches('\n').count() + 1)
                    .unwrap_or(0);
                out.refused.push((number, name_of(first)));
            }
            // reading from memory: only a substitution of a non-unicode variable lands here
            Err(_) => out.refused.push((0, None)),
        }
    }
    out
}

/// The `NAME` of a line that reads `[export ]NAME=...`, when NAME is one token (a value never is taken).
fn name_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("export")
        .filter(|r| r.starts_with([' ', '\t']))
        .map(str::trim_start)
        .unwrap_or(t);
    let (k, _) = t.split_once('=')?;
    let k = k.trim_end();
    let token =
        !k.is_empty() && !k.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '#'));
    token.then(|| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(p: &Parsed) -> Vec<(String, String)> {
        p.entries
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect()
    }

    #[test]
    fn every_form_people_write() {
        let p = parse(
            "# comment\nA=1\nB=\"two words\"\n\nexport C='single quoted'\nD=\"line1\nline2\"\nE=\"esc\\nline\"\nF='$NOT_SUBSTITUTED'\n",
        );
        assert!(p.refused.is_empty(), "{:?}", p.refused);
        assert_eq!(
            values(&p),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "single quoted".into()),
                ("D".into(), "line1\nline2".into()),
                ("E".into(), "esc\nline".into()),
                ("F".into(), "$NOT_SUBSTITUTED".into()),
            ]
        );
    }

    #[test]
    fn refused_lines_give_a_number_and_a_name_never_a_value() {
        let p = parse("A=1\n9X=secret-value\nnot a pair\nMY-VAR=x\n");
        assert_eq!(values(&p), vec![("A".into(), "1".into())]);
        assert_eq!(
            p.refused,
            vec![
                (2, Some("9X".into())),
                (3, None),
                (4, Some("MY-VAR".into()))
            ]
        );
    }
}
