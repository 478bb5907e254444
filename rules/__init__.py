"""The Hookwise rule language: schema, JSONPath conditions, matching and templating.

Pure: no database, network, Flask or Redis. Everything here works on plain dicts.

    schema        source/rule/file models, parse_*/load_rule_file/dump_* (RuleValidationError)
    paths         compile_path: simple dotted paths walk dicts; the rest use jsonpath-ng
    operators     OPERATORS: the 17 condition operators as a table
    conditions    compile_condition → evaluate(doc) → Outcome(matched, reason, trace)
    templating    compile_value/render_template/check_template in the sandbox (rules.sandbox)
    match         compile_rule, RuleSet(...).match(doc, source), build_event_document
    vocabulary    describe(): the language as plain data (operators, step fields) for editors
    templates/    starter rule files with sample payloads
"""
