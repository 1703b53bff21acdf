//! Common given names and surnames, written from general knowledge for this crate: an
//! international mix, lower case, apostrophes removed (`obrien`). Particles (`de`, `van`)
//! are listed separately in `name.rs`. Words that are far more often ordinary English
//! words than names (will, may, hope, park, rice) are left out on purpose.

#[rustfmt::skip]
pub(crate) const GIVEN: &[&str] = &[
    // English
    "james", "john", "robert", "michael", "william", "david", "richard", "joseph", "thomas", "charles", "christopher",
    "daniel", "matthew", "anthony", "mark", "donald", "steven", "paul", "andrew", "joshua", "kenneth", "kevin",
    "brian", "george", "timothy", "ronald", "edward", "jason", "jeffrey", "ryan", "jacob", "gary", "nicholas", "eric",
    "jonathan", "stephen", "larry", "justin", "scott", "brandon", "benjamin", "samuel", "gregory", "alexander",
    "patrick", "frank", "raymond", "jack", "dennis", "jerry", "tyler", "aaron", "adam", "nathan", "henry", "douglas",
    "zachary", "peter", "kyle", "noah", "ethan", "jeremy", "walter", "christian", "keith", "roger", "terry", "austin",
    "sean", "gerald", "carl", "harold", "dylan", "arthur", "lawrence", "jordan", "jesse", "bryan", "billy", "bruce",
    "gabriel", "joe", "logan", "albert", "alan", "eugene", "russell", "vincent", "philip", "bobby", "johnny",
    "bradley", "oliver", "harry", "charlie", "oscar", "leo", "freddie", "alfie", "theo", "archie", "liam", "lucas",
    "mason", "elijah", "owen", "luke", "isaac", "caleb", "hugo", "felix", "simon", "ian", "neil", "graham", "colin",
    "stuart", "martin", "tony", "connor", "callum", "declan", "aidan", "ciaran", "niamh", "siobhan", "aoife",
    "sinead", "mary", "patricia", "jennifer", "linda", "elizabeth", "barbara", "susan", "jessica", "sarah", "karen",
    "lisa", "nancy", "betty", "margaret", "sandra", "ashley", "kimberly", "emily", "donna", "michelle", "carol",
    "amanda", "dorothy", "melissa", "deborah", "stephanie", "rebecca", "sharon", "laura", "cynthia", "kathleen",
    "amy", "angela", "shirley", "anna", "brenda", "pamela", "emma", "nicole", "helen", "samantha", "katherine",
    "christine", "debra", "rachel", "carolyn", "janet", "catherine", "maria", "heather", "diane", "ruth", "julie",
    "olivia", "joyce", "victoria", "kelly", "lauren", "christina", "joan", "evelyn", "judith", "megan", "andrea",
    "cheryl", "hannah", "jacqueline", "martha", "gloria", "teresa", "ann", "sara", "madison", "frances", "kathryn",
    "janice", "jean", "abigail", "alice", "julia", "judy", "sophia", "grace", "denise", "amber", "doris", "marilyn",
    "danielle", "beverly", "isabella", "theresa", "diana", "natalie", "brittany", "charlotte", "marie", "kayla",
    "alexis", "lori", "ava", "mia", "amelia", "isla", "ella", "chloe", "lily", "sophie", "lucy", "ellie", "freya",
    "poppy", "zoe", "holly", "jade", "ruby", "rose", "fiona", "claire", "harriet", "eleanor", "imogen", "florence",
    "matilda",
    // Spanish, Portuguese
    "jose", "juan", "carlos", "luis", "jorge", "pedro", "miguel", "javier", "alejandro", "fernando", "diego", "pablo",
    "sergio", "manuel", "antonio", "francisco", "rafael", "andres", "ricardo", "eduardo", "roberto", "alberto",
    "raul", "enrique", "joao", "tiago", "rui", "paulo", "gustavo", "rodrigo", "marcelo", "lucia", "carmen", "isabel",
    "elena", "ana", "sofia", "valentina", "camila", "gabriela", "mariana", "daniela", "paula", "alejandra",
    "fernanda", "beatriz", "ines", "rosa", "pilar", "dolores", "guadalupe", "ximena", "santiago", "mateo", "leonardo",
    "emilio", "josé", "andrés", "raúl", "joão", "lucía", "sofía", "inês",
    // French
    "pierre", "michel", "philippe", "alain", "nicolas", "francois", "françois", "jacques", "louis", "julien",
    "antoine", "mathieu", "guillaume", "sebastien", "sébastien", "thierry", "nathalie", "isabelle", "sylvie",
    "francoise", "françoise", "monique", "sandrine", "celine", "céline", "aurelie", "aurélie", "camille", "manon",
    "léa", "lea", "amelie", "amélie", "juliette", "margaux", "chloé", "hélène", "helene",
    // German, Dutch
    "hans", "klaus", "jürgen", "juergen", "wolfgang", "dieter", "uwe", "stefan", "andreas", "markus", "matthias",
    "tobias", "lukas", "jonas", "leon", "finn", "maximilian", "florian", "sebastian", "johannes", "ursula", "ute",
    "sabine", "petra", "monika", "renate", "birgit", "anja", "katrin", "heike", "lena", "leonie", "greta", "jan",
    "pieter", "henk", "kees", "joost", "sander", "bram", "daan", "ruben", "thijs", "sanne", "anouk", "femke", "lotte",
    "fleur", "eva", "saskia",
    // Italian
    "giuseppe", "giovanni", "marco", "luca", "francesco", "alessandro", "matteo", "lorenzo", "davide", "simone",
    "stefano", "giorgio", "paolo", "salvatore", "vincenzo", "giulia", "chiara", "francesca", "federica", "martina",
    "alessia", "silvia", "elisa", "giovanna", "antonella",
    // Nordic
    "lars", "anders", "nils", "erik", "johan", "per", "karl", "magnus", "henrik", "sven", "bjorn", "björn", "ole",
    "mikkel", "søren", "soren", "mads", "kari", "ingrid", "astrid", "sigrid", "freja", "maja", "elin", "karin",
    "annika", "linnea", "aino", "mikko", "juha", "jukka", "timo", "antti", "heikki", "matti",
    // Slavic
    "piotr", "krzysztof", "tomasz", "pawel", "paweł", "marcin", "michal", "michał", "jakub", "katarzyna", "agnieszka",
    "malgorzata", "małgorzata", "magdalena", "joanna", "ewa", "zofia", "ivan", "dmitri", "dmitry", "sergei", "sergey",
    "alexei", "alexey", "vladimir", "nikolai", "andrei", "mikhail", "olga", "natalia", "tatiana", "svetlana", "irina",
    "ekaterina", "yulia", "anastasia", "oksana", "taras", "bohdan", "milan", "marko", "ivana", "jelena", "dragan",
    "nikola", "petar", "jiri", "jiří", "jana", "lucie", "tereza",
    // Greek, Turkish
    "giorgos", "yannis", "dimitris", "nikos", "konstantinos", "eleni", "katerina", "mehmet", "mustafa", "ahmet",
    "huseyin", "hüseyin", "hasan", "ismail", "murat", "emre", "burak", "fatma", "ayse", "ayşe", "emine", "zeynep",
    "elif", "merve",
    // Arabic, Persian
    "mohammed", "muhammad", "mohamed", "ahmed", "ahmad", "omar", "umar", "yusuf", "youssef", "khalid", "hamza",
    "bilal", "tariq", "samir", "nabil", "rami", "fatima", "aisha", "ayesha", "khadija", "mariam", "maryam", "layla",
    "leila", "noor", "nour", "zainab", "yasmin", "salma", "huda", "amira", "reza", "hossein", "mehdi", "ali",
    "dariush", "parisa", "shirin", "nasrin", "neda",
    // South Asian
    "raj", "rahul", "amit", "anil", "sunil", "vijay", "ravi", "arjun", "rohan", "vikram", "sanjay", "suresh",
    "ramesh", "rajesh", "deepak", "manoj", "arun", "kiran", "aditya", "nikhil", "priya", "anjali", "pooja", "neha",
    "sunita", "anita", "kavita", "deepika", "divya", "lakshmi", "meera", "shreya", "aarav", "ishaan", "ananya",
    "aditi", "sneha", "swati", "gurpreet", "harpreet", "manpreet", "jaspreet",
    // East and South-East Asian
    "wei", "jing", "ming", "hui", "lei", "jun", "hao", "xin", "fang", "ying", "xiaoming", "jian", "hiroshi",
    "takeshi", "kenji", "yuki", "haruto", "sota", "yuto", "daiki", "akira", "satoshi", "naoko", "yoko", "keiko",
    "yumiko", "sakura", "hana", "aiko", "haruka", "minji", "jisoo", "jiwoo", "seojun", "minjun", "jihoon", "hyun",
    "thanh", "minh", "linh", "anh", "huong", "tuan", "duc", "quang", "trang", "phuong",
    // African
    "chinedu", "chidi", "emeka", "obinna", "ngozi", "chioma", "adaeze", "oluwaseun", "seun", "tunde", "babatunde",
    "kemi", "folake", "yemi", "kwame", "kofi", "kojo", "akosua", "abena", "kwabena", "amara", "zanele", "thabo",
    "sipho", "themba", "nomvula", "lerato", "bongani", "baraka", "juma", "amina", "fatou", "moussa", "mamadou",
    "ibrahima", "aminata", "tendai", "tatenda", "farai", "chipo",
];

#[rustfmt::skip]
pub(crate) const SURNAMES: &[&str] = &[
    // English, Irish, Scottish, Welsh
    "smith", "johnson", "williams", "brown", "jones", "miller", "davis", "wilson", "anderson", "thomas", "taylor",
    "moore", "jackson", "martin", "thompson", "white", "harris", "clark", "lewis", "robinson", "walker", "young",
    "allen", "king", "wright", "scott", "hill", "green", "adams", "nelson", "baker", "hall", "campbell", "mitchell",
    "carter", "roberts", "phillips", "evans", "turner", "parker", "collins", "edwards", "stewart", "morris", "murphy",
    "cook", "rogers", "morgan", "cooper", "peterson", "reed", "bailey", "bell", "kelly", "howard", "ward", "cox",
    "richardson", "wood", "watson", "brooks", "bennett", "gray", "grey", "james", "hughes", "price", "sanders",
    "myers", "long", "ross", "foster", "powell", "jenkins", "perry", "russell", "sullivan", "fisher", "henderson",
    "coleman", "simmons", "patterson", "jordan", "reynolds", "hamilton", "graham", "wallace", "west", "cole", "hayes",
    "gibson", "ellis", "stevens", "murray", "ford", "marshall", "owens", "mcdonald", "harrison", "kennedy", "wells",
    "davies", "walsh", "byrne", "ryan", "obrien", "oconnor", "oneill", "doyle", "mccarthy", "gallagher", "quinn",
    "macdonald", "fraser", "morrison", "robertson", "mackenzie", "reid", "paterson", "lloyd", "thomson", "knight",
    "webb", "palmer", "holmes", "mills", "barnes", "chapman", "lawrence", "fox", "lee", "butler", "dunn", "hunt",
    "shaw", "wilkinson", "atkinson", "ashworth", "whitaker", "hardy", "pearson",
    // Spanish, Portuguese
    "garcia", "rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "perez", "sanchez", "ramirez", "torres",
    "flores", "rivera", "gomez", "diaz", "fernandez", "alvarez", "jimenez", "moreno", "munoz", "muñoz", "romero",
    "alonso", "gutierrez", "navarro", "ruiz", "serrano", "molina", "morales", "ortiz", "delgado", "castro", "ortega",
    "rubio", "sanz", "nunez", "núñez", "iglesias", "medina", "garrido", "castillo", "santos", "vazquez", "vázquez",
    "ramos", "silva", "oliveira", "souza", "pereira", "ferreira", "alves", "carvalho", "ribeiro", "almeida",
    "rodrigues", "martins", "gomes", "barbosa", "rocha", "dias", "nascimento", "araujo", "araújo", "cardoso",
    "teixeira", "mendes", "vieira", "guzman", "mendoza", "vargas", "reyes", "cruz", "herrera", "aguilar", "chavez",
    "garcía", "rodríguez", "martínez", "hernández", "lópez", "gonzález", "pérez", "sánchez", "ramírez", "gómez",
    "díaz", "fernández", "álvarez", "jiménez", "gutiérrez",
    // French
    "dubois", "durand", "leroy", "moreau", "laurent", "lefebvre", "michel", "bernard", "petit", "dupont", "fontaine",
    "rousseau", "girard", "bonnet", "lambert", "fournier", "mercier", "guerin", "faure", "chevalier", "gauthier",
    "lefèvre", "garnier", "roux", "vincent", "muller",
    // German, Dutch
    "müller", "mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker", "schulz",
    "hoffmann", "koch", "richter", "klein", "wolf", "schröder", "schroeder", "neumann", "schwarz", "zimmermann",
    "braun", "krüger", "hofmann", "hartmann", "lange", "werner", "krause", "lehmann", "schmitt", "jansen", "janssen",
    "visser", "smit", "bakker", "meijer", "mulder", "bos", "vos", "peters", "hendriks", "dekker", "brouwer",
    "dijkstra", "vermeulen", "jong", "dijk", "berg", "vries", "boer",
    // Italian
    "rossi", "russo", "ferrari", "esposito", "bianchi", "romano", "colombo", "ricci", "marino", "greco", "bruno",
    "gallo", "conti", "mancini", "costa", "giordano", "rizzo", "lombardi", "moretti", "barbieri", "santoro",
    "mariani", "rinaldi", "caruso", "ferrara", "luca",
    // Nordic
    "hansen", "johansen", "olsen", "larsen", "andersen", "pedersen", "nielsen", "kristiansen", "jensen", "johansson",
    "andersson", "karlsson", "nilsson", "eriksson", "larsson", "olsson", "persson", "svensson", "gustafsson",
    "lindberg", "lindqvist", "virtanen", "korhonen", "nieminen", "mäkinen", "makinen", "hämäläinen", "hamalainen",
    // Slavic
    "nowak", "kowalski", "kowalska", "wisniewski", "wiśniewski", "wojcik", "wójcik", "kowalczyk", "kaminski",
    "lewandowski", "zielinski", "szymanski", "wozniak", "dabrowski", "kozlowski", "jankowski", "mazur", "krawczyk",
    "ivanov", "ivanova", "smirnov", "smirnova", "kuznetsov", "popov", "popova", "vasiliev", "petrov", "petrova",
    "sokolov", "mikhailov", "novikov", "fedorov", "morozov", "volkov", "kovalenko", "shevchenko", "bondarenko",
    "tkachenko", "melnyk", "novak", "horvat", "kovac", "kovač", "jovanovic", "petrovic", "nikolic", "dvorak",
    // Greek, Turkish
    "papadopoulos", "papadopoulou", "georgiou", "nikolaidis", "dimitriou", "konstantinou", "vlachos", "pappas",
    "yilmaz", "yılmaz", "kaya", "demir", "sahin", "şahin", "celik", "çelik", "yildiz", "aydin", "ozturk", "öztürk",
    "arslan", "dogan", "kilic", "aslan", "korkmaz",
    // Arabic, Persian, South Asian
    "hassan", "hussein", "hussain", "ahmed", "mohamed", "mahmoud", "ibrahim", "khalil", "haddad", "nasser", "saleh",
    "mansour", "khoury", "abdullah", "rahman", "aziz", "karim", "farah", "hamdan", "qureshi", "siddiqui", "sheikh",
    "malik", "chaudhry", "iqbal", "khan", "hosseini", "ahmadi", "mohammadi", "karimi", "rezaei", "moradi", "jafari",
    "rahimi", "hashemi", "tehrani", "patel", "sharma", "singh", "kumar", "gupta", "shah", "mehta", "joshi", "desai",
    "reddy", "rao", "nair", "iyer", "menon", "pillai", "chatterjee", "banerjee", "mukherjee", "das", "bose", "ghosh",
    "agarwal", "verma", "mishra", "pandey", "yadav", "jain", "chopra", "kapoor", "malhotra", "bhatt", "kaur", "naidu",
    "krishnan", "subramanian", "ali",
    // East and South-East Asian
    "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "zhu", "hu", "guo",
    "lin", "luo", "gao", "zheng", "liang", "xie", "tang", "han", "feng", "deng", "cao", "peng", "zeng", "xiao",
    "tian", "dong", "pan", "yuan", "cai", "jiang", "wong", "chan", "cheung", "leung", "lau", "ng", "tsang", "sato",
    "suzuki", "takahashi", "tanaka", "watanabe", "ito", "yamamoto", "nakamura", "kobayashi", "kato", "yoshida",
    "yamada", "sasaki", "yamaguchi", "matsumoto", "inoue", "kimura", "hayashi", "shimizu", "yamazaki", "mori", "abe",
    "ikeda", "hashimoto", "ishikawa", "ogawa", "okada", "goto", "fujita", "kim", "choi", "jung", "jeong", "kang",
    "cho", "yoon", "jang", "lim", "seo", "shin", "kwon", "hwang", "ahn", "yoo", "hong", "nguyen", "tran", "pham",
    "hoang", "huynh", "phan", "vu", "vo", "dang", "bui", "ngo", "duong", "ly",
    // African
    "okafor", "okeke", "adeyemi", "adebayo", "mensah", "owusu", "boateng", "asante", "kamau", "otieno", "odhiambo",
    "mwangi", "wanjiru", "njoroge", "ndlovu", "dlamini", "nkosi", "khumalo", "mokoena", "naidoo", "botha", "merwe",
    "banda", "phiri", "diallo", "traore", "traoré", "keita", "coulibaly", "diop", "ndiaye", "abiodun", "eze", "nwosu",
    "obi", "chukwu", "okonkwo", "balogun", "bello", "yusuf", "musa", "abubakar", "haile", "tesfaye", "bekele",
    "girma", "alemu", "tadesse",
];

/// Names that are also everyday words ("Dark Green", "Solid Wood", "Jade Plant"): one of
/// these alone does not make a phrase a name; the other end of it must be a name too.
#[rustfmt::skip]
pub(crate) const WORDLIKE: &[&str] = &[
    "green", "brown", "white", "gray", "grey", "wood", "bell", "hill", "king", "cook", "baker", "young", "price",
    "long", "fox", "hunt", "mills", "west", "hall", "ward", "ford", "cole", "reed", "wells", "wolf", "sun", "rose",
    "ruby", "jade", "amber", "holly", "grace", "jordan", "mark", "frank", "parker", "marshall",
];
