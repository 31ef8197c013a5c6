// Package route implements the IoT Edge hub's route grammar and WHERE condition
// language: it parses and type-checks routes from the $edgeHub desired properties and
// decides, per message, which endpoints the message goes to, with which priority and
// TTL. It is pure (no I/O, no clock, no logging) and compatible with Azure IoT Edge's
// edgeHub, whose behaviour it copies from Microsoft.Azure.Devices.Routing.Core.
//
// # Basics
//
//	r, err := route.Parse("toCloud", `FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream`)
//	t, err := route.Compile([]route.Spec{{Name: "toCloud", Text: ..., Priority: route.DefaultPriority}})
//	targets := t.Evaluate(&route.Message{Source: route.ModuleSource("m", "out"), ...})
//
// A route is
//
//	[SELECT *] FROM <path> [WHERE <condition>] INTO <sink>
//
// Keywords are case-insensitive. The path is /item{/item}, an item being * or a name; it
// is normalised to a prefix ending in '/' (FROM /* -> "/", FROM /messages/* ->
// "/messages/") and matched case-insensitively against the message source, which also
// ends in '/', so /messages/modules/m does not match module m1. FROM /* also matches
// twin change notifications. The sink is $upstream or
// BrokeredEndpoint("/modules/{m}/inputs/{i}") (single or double quotes).
//
// # Conditions
//
// Operators, loosest first, all left-associative:
//
//	??   OR   AND   = != <>   < <= > >=   + - ||   * / %   unary - and NOT
//
// Unary operators bind tightest: NOT a = b is (NOT a) = b.
// Literals: true false null undefined (lower case only), numbers (30, -2.5, .5, 1e3),
// hex (0x1F), strings in '...' or "..." with \' \" \\ \uXXXX escapes.
//
// Properties: a bare name is an application property (a string). $name is the system
// property name, unless an application property literally named $name exists. {$name}
// always means the system property. $body.a.b[0] queries the JSON body (member names are
// case-sensitive); an application property named $body.a.b[0] wins unless written
// {$body.a.b[0]}. Property names are case-insensitive; string comparisons are ordinal
// and case-sensitive. $body queries work only when the contentType system property is
// application/json (any case, no parameters) and contentEncoding is utf-8, utf-16 or
// utf-32 (utf-16/32 little-endian unless a BOM says otherwise); otherwise, and for
// object or array results, they are undefined.
//
// Built-ins (names case-insensitive): abs exp power square ceiling floor sign sqrt;
// as_number is_bool is_defined is_null is_number is_string; concat length lower upper
// substring index_of starts_with ends_with contains; twin_change_includes.
//
// Typing is static, as in Azure: application and system properties are strings, so
// `temperature > 30` is rejected with "invalid operands to binary operator '>'" and one
// writes `as_number(temperature) > 30`. $body queries are dynamic and compatible with
// every type but undefined. Built-in arguments are checked for count and type.
//
// Evaluation uses three-valued logic: any comparison involving undefined or null is
// undefined; NOT undefined is undefined; AND is false if either side is false, OR is true
// if either side is true, otherwise undefined. A route matches only when its condition is
// true: undefined routes as false. A condition that is not boolean (WHERE level)
// compiles, as in Azure, but matches only when it yields true at runtime, which only a
// $body query can.
//
// # Priority, TTL and deduplication
//
// Table.Evaluate collects (endpoint, priority, TTL) from every matching route and keeps
// one Target per endpoint: the lowest priority number, ties broken by route name, with
// that route's TTL. Results are sorted by endpoint ID ($upstream, /modules/m/inputs/i).
//
// # Caveats: lexing
//
// The lexer reproduces Azure's ANTLR lexer, including its longest-match rule: name
// characters are everything except ()<>@,;:\"/[]?={} and whitespace, so alert-level is
// one property name, and so are a-1, x*2, a||b and -x. Put spaces around + - * % || when
// the operand next to them is a name or a number: as_number(x) * 2, a - 1. A lone token
// like e5 is a number literal that .NET cannot parse and is undefined; /* ... */ is a
// comment, even right after a path ending in /.
//
// # Caveats: where this package differs from Azure's edgeHub
//
//   - A $body path that does not exist is undefined (edgeHub: null, which made
//     is_defined($body.missing) true and $body.missing = null true).
//   - null = null is undefined, like every comparison with null (edgeHub: true).
//   - $body values of different kinds are never equal and are unordered: 'a' = 1 is
//     false, 'a' <> 1 true, 'a' < 1 undefined (edgeHub orders them by kind).
//   - is_null(x) is true exactly when x is null (edgeHub's QueryValue overload returns
//     true for most non-null body values).
//   - length, index_of and substring count Unicode code points (.NET: UTF-16 units).
//   - JSON bodies must be strict RFC 8259 JSON (Newtonsoft also takes comments etc.).
//   - twin_change_includes(path) is accepted in routes FROM /* and FROM
//     /twinChangeNotifications (edgeHub refuses it in every route, as its routes always
//     have a custom source). It is true when the path is present and not null in a twin
//     change notification body, false when absent or null, undefined for other messages.
//     The path must start with properties.reported., properties.desired. or tags.
//   - Empty module or input names in BrokeredEndpoint, trailing text after the sink, hex
//     literals wider than 64 bits and duplicate route names are errors.
//   - Escapes are decoded left to right (edgeHub's two regex passes turn \\u0041 into \A).
package route
