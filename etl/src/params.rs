//! `${name}` parameters in a job file's strings.

use std::collections::BTreeMap;

/// `text` with every `${name}` replaced by its value; the names not in
/// `params` are the error.
pub(crate) fn substitute(
    text: &str,
    params: &BTreeMap<String, String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match params.get(name) {
                    Some(value) => out.push_str(value),
                    None => missing.push(name.to_string()),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_replaced_and_unknown_ones_named() {
        let params = BTreeMap::from([("day".to_string(), "2024-01-02".to_string())]);
        assert_eq!(
            substitute("s3://b/${day}/x-${day}", &params).unwrap(),
            "s3://b/2024-01-02/x-2024-01-02"
        );
        assert_eq!(substitute("no ${ end", &params).unwrap(), "no ${ end");
        assert_eq!(
            substitute("${day} ${dy} ${out}", &params).unwrap_err(),
            vec!["dy".to_string(), "out".to_string()]
        );
    }
}
