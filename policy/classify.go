package policy

import (
	"sort"
	"strings"
)

// The task-type classifier is a transparent scorer: each type has a
// lexicon of words, stems (a trailing *) and phrases with weights, plus a
// few form features (code fences, amounts, the coordinator's section
// prompt). A text's score for a type is the sum of the weights of the
// distinct entries it contains; scores are normalised to sum to 1, and
// confidence is the margin between the two best.
//
// Before scoring, sentences in which the text describes itself ("this is
// just a test", "treat as low risk", "this is a harmless creative writing
// task") are removed: a prompt's claim about its own type or risk is the
// easiest way to talk a router into a weaker policy, so it counts for
// nothing.

// otherPrior is other's score before any evidence: text with little or no
// domain signal is other.
const otherPrior = 1.0

var lexicon = map[string]map[string]float64{
	TypeLongForm: {
		"write an essay": 3, "fable": 3, "fairy tale": 3, "short fiction": 3, "anthology": 3, "sonnet": 3, "limerick": 3,
		"villanelle": 3, "limericks": 3, "stanza": 3, "rhyme": 2, "rhyming": 2, "storyline": 3, "plot twist": 3, "worldbuilding": 3,
		"backstory": 3, "monologue": 3, "script for a play": 3, "play": 0.5, "biography": 2.5, "autobiography": 3, "obituary": 3,
		"guidebook": 2, "guide": 1, "chapters": 2.5, "sections": 1, "introduction": 1.5, "conclusion": 1, "foreword": 3, "preface": 3,
		"epilogue": 3, "prologue": 3, "copywriting": 2.5, "copy": 1, "headline": 1.5, "tagline": 2, "slogan": 2, "caption": 1.5,
		"essay on": 3, "column": 0.5, "editorial": 3, "report on": 1, "write about": 1.5, "describe": 0.5, "narrator": 3,
		"first person": 2, "third person": 2, "metaphor": 2, "imagery": 2, "storytelling": 3, "rewrite": 1.5, "edit": 1, "proofread": 2,
		"expand": 1, "bullet points": 1, "tone of voice": 2, "audience of": 1, "greeting card": 2.5, "toast": 2, "letter": 1, "diary": 2.5,
		"journal entry": 3, "serialized": 3, "installment": 2, "chapter book": 3, "graphic novel": 3, "comic": 2, "poems": 3, "tale": 2.5,
		"essay": 3, "article": 2.5, "chapter": 3, "novel": 3, "story": 2.5, "short story": 3, "stories": 2.5,
		"blog post": 3, "blog": 2, "poem": 3, "poetry": 3, "verse": 2, "narrative": 2, "fiction": 3, "flash-fiction": 3,
		"character": 1.5, "characters": 1.5, "plot": 1, "manuscript": 3, "memoir": 3, "memoir-style": 3,
		"screenplay": 3, "book": 1.5, "prose": 2.5, "creative": 1.5, "speech": 2.5, "newsletter": 2.5,
		"op-ed": 3, "press release": 3, "protagonist": 3, "heroine": 3, "hero": 2, "dialogue": 2, "scene": 2,
		"haiku": 3, "lyrics": 3, "ballad": 3, "song": 1.5, "eulogy": 3, "handbook": 2, "encyclopedia": 2.5,
		"encyclopedia-style": 3, "feature": 1, "feature story": 3, "long-form": 3, "explainer": 2.5,
		"magazine": 2, "paragraph": 1.5, "page": 1, "chapter of": 1, "picture book": 3, "children's": 1.5,
		"mystery": 2, "fantasy": 2, "literary": 2.5, "tone": 0.5, "voice": 1, "write a": 1, "compose": 2,
		"draft chapter": 2, "opening scene": 3, "personal essay": 3, "travel essay": 3, "wedding": 1,
		"section": 1, "write section": 4, "document:": 2, "popular-science": 3, "readers": 1,
		"audience": 1, "teenager": 0.5, "plausible": 1, "point of view": 2, "courtroom drama": 3,
	},
	TypeCode: {
		"programming": 3, "program": 2, "coding": 3, "developer": 2, "software": 2, "source code": 3, "codebase": 3, "makefile": 3,
		"gcc": 3, "clang": 3, "linker": 3, "linking": 2, "build": 1, "compile error": 3, "error message": 1.5, "stack overflow": 2,
		"loop": 2, "for-loop": 3, "while loop": 3, "list comprehension": 3, "array": 2, "arrays": 2, "string": 1, "integer": 1.5,
		"boolean": 2.5, "pointer": 2.5, "struct": 3, "enum": 3, "interface": 1.5, "generic": 1, "generics": 2.5, "lambda": 2.5,
		"closure": 2, "decorator": 2.5, "iterator": 3, "generator": 2, "module": 1.5, "package": 0.5, "import": 1.5, "dependency": 2,
		"dependencies": 2, "index": 1, "indexes": 1.5, "query": 1.5, "left join": 2, "left joins": 2, "orm": 3, "migrations": 2.5,
		"backend": 2, "frontend": 2.5, "microservice": 3, "webhook": 3, "rest api": 3, "graphql": 3, "grpc": 3, "websocket": 3,
		"ci": 1.5, "pipeline": 0.5, "unit": 0.5, "jest": 3, "pytest": 3, "junit": 3, "mock": 2, "cron": 3, "cron job": 3, "kotlin": 3,
		"swift": 2, "c#": 3, "php": 3, "ruby": 2.5, "perl": 3, "haskell": 3, "scala": 3, "vim": 2, "vscode": 3, "ide": 2,
		"terraform": 3, "ansible": 3, "nginx": 3, "ssh": 3, "ssl certificate": 2, "localhost": 3, "spring boot": 3, "django": 3,
		"rails": 2, "node": 1.5, "vue": 3, "angular": 3, "svelte": 3, "android": 2, "ios app": 2.5, "mobile app": 1.5,
		"code": 2.5, "function": 2.5, "bug": 2.5, "bugs": 2.5, "debug": 3, "stack trace": 3, "traceback": 3,
		"compile": 2.5, "compiler": 3, "python": 3, "javascript": 3, "typescript": 3, "golang": 3, "go function": 3,
		"in go": 2, "rust": 2, "java": 3, "c++": 3, "sql migration": 3, "regex": 3, "api": 2, "endpoint": 2.5,
		"refactor": 3, "unit tests": 3, "unit test": 3, "tests": 1, "class": 1, "method": 1.5, "variable": 2,
		"null pointer": 3, "exception": 2, "segfault": 3, "process": 1.5, "processes": 1.5, "child processes": 3,
		"pid": 3, "port": 1.5, "kubernetes": 3, "docker": 3, "dockerfile": 3, "pull request": 3, "git": 3,
		"merge conflict": 3, "repo": 2, "repository": 2, "script": 2, "bash": 3, "shell": 2, "shell command": 3,
		"algorithm": 2, "time complexity": 3, "recursion": 3, "library": 0.5, "framework": 1.5, "deploy": 2,
		"deployment": 1.5, "server": 1.5, "http": 2, "memory leak": 3, "goroutine": 3, "channel": 1, "thread": 1.5,
		"race condition": 3, "mutex": 3, "cli": 2.5, "html": 2.5, "css": 3, "react": 3, "component": 1.5,
		"useeffect": 3, "linked list": 3, "binary search tree": 3, "runtime": 2, "syntax": 2, "implement": 1.5,
		"typeerror": 3, "keyerror": 3, "npm": 3, "node.js": 3, "next.js": 3, "flask": 3, "json payload": 2,
		"cobra": 2, "github actions": 3, "workflow": 1, "heap": 2, "profile the": 1.5, "sigterm": 3, "sigkill": 3,
		"kill": 1.5, "hung": 1.5, "worker": 1, "supervisor": 1, "hello world": 3, "replicas": 3, "liveness probe": 3,
		"yaml": 1.5, "luhn": 2, "async/await": 3, "callback": 2.5, "port this": 2, "input validation": 2,
		"footer": 2, "terminate": 1, "listening on port": 3, "signal": 1, "deadlock": 3, "crashes": 2,
		"linux": 2, "s3": 2, "backups": 1, "migration": 2.5, "rollback": 2.5, "quicksort": 3, "in-order traversal": 3, "code does": 3,
	},
	TypeDataProcessing: {
		"mailing list": 2.5, "contact list": 2.5, "list": 0.5, "files": 1, "file": 0.5, "two files": 2, "appears twice": 2.5,
		"drop": 1, "remove duplicates": 3, "dedupe": 3, "bucket": 2, "buckets": 2, "bin": 1, "ranges": 1.5, "frequency": 1.5,
		"cross-tabulate": 3, "crosstab": 3, "lookup": 2, "vlookup": 3, "formula": 1.5, "cells": 2, "cell": 1, "sheet": 2,
		"google sheets": 3, "data entry": 3, "ocr": 2.5, "scanned": 2, "standardize": 2.5, "standardise": 2.5, "consistent": 1,
		"capitalization": 2, "rename": 1.5, "snake_case": 2, "reorder": 1.5, "columns of": 2, "format": 1, "reformat": 2,
		"convert this": 2, "conversion": 1.5, "encoding": 1.5, "utf-8": 2, "delimiter": 3, "comma-separated": 3, "tab-separated": 3,
		"jsonl": 3, "yaml file": 1.5, "metadata": 2, "taxonomy": 1.5, "classify these": 2.5, "tag each": 2.5, "annotate": 2,
		"sample": 1, "subset": 2, "totals": 2, "subtotal": 2.5, "sum": 1.5, "by year": 1.5, "by month": 1.5, "per month": 1.5,
		"monthly": 1, "yearly": 1, "time series": 3, "data points": 3, "numbers": 1, "figures": 1, "statistics": 2.5, "visualize": 2,
		"graph": 1.5, "dashboard": 1.5, "report": 0.5, "analytics": 2, "analysis": 1, "analyze this data": 3, "raw data": 3,
		"csv": 3, "dataset": 3, "data set": 3, "spreadsheet": 3, "excel": 2.5, "pivot table": 3, "column": 2,
		"columns": 2, "row": 1.5, "rows": 2, "etl": 3, "pipeline": 1.5, "deduplicate": 3, "duplicate": 2,
		"duplicate rows": 3, "clean this": 2, "data cleaning": 3, "normalize": 2, "parse": 2, "json": 2, "xml": 2.5,
		"schema": 2, "records": 2, "aggregate": 2.5, "group by": 2.5, "group them": 2.5, "merge these": 2,
		"table": 2, "tables": 2, "convert": 1.5, "transform": 1.5, "extract": 2, "missing values": 3, "outliers": 3,
		"summary statistics": 3, "average": 1.5, "median": 2, "mean": 1, "standard deviation": 3, "histogram": 2.5,
		"chart": 1.5, "log lines": 2.5, "logs": 1.5, "sort": 1.5, "sorted": 1.5, "filter": 1.5, "database": 1.5,
		"timestamps": 2, "tsv": 3, "parquet": 3, "pandas": 3, "data": 1.5, "list of": 1, "fields": 1.5,
		"label each": 2.5, "categorize": 2, "categories": 1.5, "product descriptions": 2, "survey responses": 3, "inventory": 2, "tabulate": 3, "count": 1.5,
		"counts": 1.5, "word frequencies": 3, "export": 2, "interpolation": 3, "flat table": 3, "long format": 3,
		"wide-format": 3, "warehouse": 1, "flag the rows": 3, "row number": 3, "per hour": 1.5, "per week": 1.5,
		"measurements": 1.5, "readings": 2, "anonymize": 2.5, "roster": 2, "html table": 3, "headers": 1.5,
		"share of the total": 2, "reshape": 3, "meeting notes": 1.5, "structured table": 3, "product codes": 2,
		"two lists": 2, "addresses": 1.5, "phone numbers": 1.5, "email addresses": 1.5, "sensor": 2,
	},
	TypeCustomerSupport: {
		"chatbot": 2.5, "help widget": 3, "helpline": 3, "hotline": 3, "service desk": 3, "contact us": 3, "inquiry": 2,
		"enquiry": 2, "client": 1.5, "clients": 1.5, "guest": 2, "guests": 2, "member": 1, "membership": 2, "shopper": 2.5,
		"online shop": 2.5, "store": 1, "shop": 1, "purchase": 1.5, "purchased": 2, "order": 1.5, "orders": 1.5, "tracking number": 3,
		"courier": 2.5, "parcel": 2.5, "arrived": 2, "damaged": 2, "defective": 2.5, "broken": 1.5, "faulty": 2.5, "return": 1.5,
		"returns": 2, "refunded": 2.5, "charged": 1.5, "overcharged": 3, "promo": 2, "coupon": 3, "voucher": 2.5, "loyalty": 2,
		"points": 0.5, "forum": 1, "inbox": 1.5, "follow-up": 1.5, "satisfaction": 1.5, "feedback": 1.5, "review": 1, "reviews": 1.5,
		"resolve": 1, "issue": 1, "problem": 1, "sorry": 1.5, "on behalf of": 2, "official reply": 2.5, "response to a": 1.5,
		"response to": 1, "handle": 0.5, "de-escalate": 3, "representative": 2.5, "customer service": 3, "service": 1,
		"customer": 3, "customers": 3, "support ticket": 3, "ticket": 2, "tickets": 1.5, "refund": 2.5,
		"return policy": 3, "complaint": 3, "complains": 3, "reply": 2, "reply to": 2, "respond to": 2, "answer this": 1.5,
		"angry": 2, "frustrated": 2, "unhappy": 2, "apology": 2, "apologizing": 2, "order #": 3, "my order": 3,
		"shipping": 2.5, "delivery": 2, "package": 2, "password": 2, "reset their password": 3, "login": 1.5,
		"subscription": 2, "cancel": 2, "live chat": 3, "chat": 1.5, "support agent": 3, "agents": 1,
		"help desk": 3, "help-center": 3, "faq": 3, "user": 1, "warranty": 2.5, "exchange": 1.5,
		"replacement": 2, "store credit": 3, "canned responses": 3, "macros": 3, "zendesk": 3,
		"one-star review": 3, "polite": 2, "politely": 2, "empathetic": 2, "friendly tone": 2, "troubleshooting": 2,
		"discount code": 3, "checkout": 2, "back-ordered": 3, "escalation note": 2.5, "phone support": 3,
		"billing": 2, "support": 2, "our support": 3, "guest relations": 3, "goodwill": 2.5, "opening hours": 2.5,
		"welcome message": 2.5, "on hold": 2.5, "duplicate charges": 2, "account was locked": 3, "decision tree": 1.5,
		"wrong size": 3, "ship to": 3, "delivered": 1.5, "invoice copy": 2.5, "step-by-step": 1,
	},
	TypeMedical: {
		"blood sugar": 3, "glucose": 3, "prediabetes": 3, "cholesterol": 3, "heart": 1.5, "heart attack": 3, "lungs": 2.5,
		"asthma": 3, "asthmatic": 3, "beta blocker": 3, "contraindications": 3, "contraindicated": 3, "concussion": 3, "injury": 2,
		"injured": 2, "fracture": 3, "broken bone": 3, "sprain": 3, "burn": 1.5, "burns": 1.5, "first aid": 3, "bleeding": 3,
		"swallowed": 2.5, "poison": 2.5, "poisoning": 3, "toddler": 1, "baby": 1, "newborn": 2, "colonoscopy": 3, "endoscopy": 3,
		"biopsy": 3, "scan": 1.5, "ultrasound": 3, "blood test": 3, "cholesterol test": 3, "screening": 2, "nurse's": 2,
		"handover": 1.5, "post-op": 3, "postoperative": 3, "pain": 2, "painkiller": 3, "painkillers": 3, "sleeping pills": 3,
		"lethal": 2.5, "dosing": 3, "tablets": 2, "capsules": 3, "inhaler": 3, "physiotherapy": 3, "rehab": 2, "physician": 3,
		"gp": 2.5, "surgeon": 3, "pharmacist": 1.5, "paramedic": 3, "ambulance": 3, "a&e": 3, "er": 1, "virus": 2, "bacterial": 3,
		"flu": 2.5, "covid": 3, "cough": 3, "headache": 3, "migraine": 3, "nausea": 3, "vomiting": 3, "dizzy": 3, "dizziness": 3,
		"blood": 1.5, "anemia": 3, "thyroid": 3, "hormone": 2, "pregnancy": 2.5, "miscarriage": 3, "contraception": 3, "therapy for": 2,
		"psychiatric": 3, "psychiatrist": 3, "antidepressant": 3, "adhd": 2.5, "autism": 2, "dementia": 3, "alzheimer's": 3,
		"patient": 3, "patients": 3, "patient's": 3, "diagnosis": 3, "diagnose": 3, "symptom": 3, "symptoms": 3,
		"dose": 3, "dosage": 3, "dosages": 3, "medication": 3, "medications": 3, "drug": 2, "drug interactions": 3,
		"prescribing": 3, "prescription": 3, "doctor": 1.5, "nurse": 1.5, "nurses": 1.5, "hospital": 1.5,
		"clinic": 2.5, "clinical": 3, "treatment": 2, "treated": 1.5, "therapy": 2, "disease": 2.5, "cancer": 3,
		"cancerous": 3, "diabetes": 3, "blood pressure": 3, "fever": 3, "infection": 2.5, "antibiotics": 3,
		"amoxicillin": 3, "vaccine": 2.5, "pregnant": 2.5, "surgery": 2.5, "side effects": 3, "lab results": 3,
		"mri": 3, "icd-10": 3, "discharge summary": 3, "medical": 3, "health": 1.5, "rash": 3, "allergist": 3,
		"ibuprofen": 3, "paracetamol": 3, "insulin": 3, "chest pain": 3, "overdose": 3, "depressed": 2.5,
		"sleep": 0.5, "triage": 3, "pills": 2.5, "prognosis": 3, "ecg": 3, "sepsis": 3, "wound": 3,
		"hemoglobin": 3, "ferritin": 3, "sertraline": 3, "melatonin": 2.5, "warfarin": 3, "oxycodone": 3,
		"milligrams": 3, "mg": 2.5, "care plan": 3, "hip replacement": 3, "mole": 2.5, "colon": 2, "stroke": 3,
		"epinephrine": 3, "statin": 3, "prednisone": 3, "taper": 2, "metformin": 3, "lisinopril": 3,
		"diazepam": 3, "meningitis": 3, "emergency room": 3, "numbness": 3, "kidney": 2.5, "paediatric": 3,
		"pediatric": 3, "shortness of breath": 3, "infant": 1.5, "infants": 1.5, "guidelines": 1,
		"urinary tract": 3, "disc protrusion": 3, "bmi": 1.5, "pharmacy": 1,
	},
	TypeLegal: {
		"law": 2.5, "laws": 2.5, "against the law": 3, "illegal": 3, "lawful": 3, "unlawful": 3, "crime": 2.5, "criminal": 3,
		"felony": 3, "misdemeanor": 3, "arrested": 3, "police": 2, "fine": 1, "fined": 2.5, "penalty": 2, "hearing": 2, "trial": 2.5,
		"claim": 1, "claims": 1, "served": 1.5, "summons": 3, "prenuptial": 3, "prenup": 3, "marriage": 1, "separation": 1.5,
		"inheritance law": 3, "estate": 1.5, "heirs": 3, "trust": 1, "shareholder": 2, "shareholders": 2, "founder": 1,
		"articles of association": 3, "bylaws": 3, "incorporate": 2, "llc": 2.5, "rental agreement": 3, "tenancy": 3, "deposit": 1,
		"notice period": 2.5, "terms and conditions": 3, "disclaimer": 2.5, "waiver": 3, "consent form": 2, "data protection": 3,
		"regulator": 2, "legislation": 3, "act": 0.5, "section 8": 1, "constitution": 3, "constitutional": 3, "appeal": 2,
		"solicitor": 3, "barrister": 3, "paralegal": 3, "legal advice": 3, "legal action": 3, "sued": 3, "settlement": 2,
		"damages": 2, "defamation": 3, "libel": 3, "slander": 3, "harassment": 2, "discrimination": 2, "employment tribunal": 3,
		"contract": 3, "contracts": 3, "clause": 3, "clauses": 3, "lawsuit": 3, "sue": 3, "court": 3, "judge": 2,
		"attorney": 3, "lawyer": 2, "legal": 3, "legally": 3, "liability": 2.5, "indemnification": 3,
		"terms of service": 2.5, "nda": 3, "non-compete": 3, "agreement": 2.5, "breach": 2.5, "statute": 3,
		"statute of limitations": 3, "regulation": 1.5, "gdpr": 2.5, "copyright": 2.5, "fair use": 3,
		"trademark": 3, "patent": 3, "patentable": 3, "license": 1.5, "tenant": 2.5, "landlord": 2.5, "lease": 2.5,
		"evicted": 3, "eviction": 3, "custody": 3, "divorce": 3, "will": 0.5, "living trust": 3, "probate": 3,
		"power of attorney": 3, "plaintiff": 3, "defendant": 2, "defendant's": 2, "notarized": 3, "jurisdiction": 3,
		"governing law": 3, "cease and desist": 3, "arbitration": 3, "wrongful termination": 3,
		"small claims": 3, "rights": 1.5, "privacy policy": 2.5, "subpoena": 3, "affidavit": 3, "case law": 3,
		"visa": 2, "immigration": 2.5, "force majeure": 3, "enforceable": 3, "binding": 2.5, "burden of proof": 3,
		"negligence": 3, "deposition": 3, "testify": 2, "labor law": 3, "employment contract": 3,
		"legal protections": 3, "responsible for the damage": 2, "execute a contract": 3, "complies with": 1.5,
		"notification obligations": 3, "consent": 1.5, "owner": 0.5, "own the copyright": 3,
	},
	TypeFinancial: {
		"lease or buy": 2, "car loan": 3, "brokerage": 3, "brokerage account": 3, "robo-advisor": 3, "robo-advisors": 3, "isa": 3,
		"fees": 1.5, "fee": 1, "loss": 1, "losses": 1.5, "profit": 2, "profits": 2, "carry forward": 2, "tax year": 3,
		"forecast": 1.5, "cash": 2, "cash position": 3, "sales": 1, "costs": 1.5, "cost": 1, "price": 1, "prices": 1, "pricing": 1.5,
		"spend": 1, "spending": 2, "afford": 2.5, "affordable": 1.5, "save": 1, "saving": 2, "emergency fund": 3, "vested": 3,
		"vesting": 3, "equity": 2, "shareholder value": 3, "market": 1, "markets": 1.5, "stock market": 3, "trading": 2.5, "trader": 2.5,
		"broker": 2.5, "fund": 2, "funds": 2, "mutual fund": 3, "index": 0.5, "yield": 2, "apr": 3, "apy": 3, "rate": 0.5,
		"rates": 1, "lender": 3, "lending": 3, "borrow": 2.5, "borrowing": 2.5, "repay": 2.5, "repayment": 3, "overdraft": 3,
		"bankruptcy": 3, "insolvency": 3, "accountant": 3, "bookkeeping": 3, "vat": 3, "deductible": 3, "deduction": 2.5,
		"deductions": 2.5, "write off": 2, "depreciation": 3, "amortization": 3, "wealth": 2.5, "wealthy": 2, "rich": 1,
		"currency": 2, "exchange rate": 3, "forex": 3, "gold": 1.5, "real estate": 2.5, "property investment": 3, "rent": 1,
		"debt-to-income": 3, "income": 2, "wages": 2, "paycheck": 2.5, "bonus": 1.5, "stipend": 2, "grant": 1,
		"invest": 3, "investment": 3, "investing": 3, "stock": 2.5, "stocks": 2.5, "shares": 2, "portfolio": 2.5,
		"retire": 2.5, "retirement": 2.5, "401k": 3, "ira": 2.5, "roth": 3, "tax": 3, "taxed": 3, "taxpayer": 3,
		"tax bracket": 3, "income tax": 3, "budget": 2, "loan": 3, "mortgage": 3, "interest": 2, "interest rate": 3,
		"compound interest": 3, "credit": 1.5, "credit card": 2.5, "credit score": 3, "debt": 2.5, "bank": 2,
		"savings": 2.5, "dividends": 3, "etf": 3, "bonds": 2, "crypto": 3, "financial": 3, "finance": 3,
		"accounting": 2.5, "balance sheet": 3, "cash flow": 3, "revenue": 2, "income statement": 3, "payroll": 2.5,
		"capital gains": 3, "pension": 3, "annuity": 3, "hedge funds": 3, "options": 1.5, "leverage": 2,
		"margin": 1.5, "margin calls": 3, "valuation": 2.5, "value this startup": 3, "ebitda": 3, "money": 2,
		"salary": 1.5, "expenses": 2, "expense claims": 3, "index fund": 3, "refinance": 3, "closing costs": 3,
		"net present value": 3, "irr": 3, "inheritance": 2.5, "offshore": 3, "ledger": 2, "reconcile": 2,
		"bank transactions": 3, "reverse mortgage": 3, "expense ratio": 3, "earnings": 2, "net income": 3,
		"inflation-protected": 3, "returns": 1.5, "student loan": 3, "freelancer earning": 2, "receipts": 1.5,
		"discounted cash flow": 3, "investment memo": 3, "buy": 1,
	},
	TypeOther: {
		"conversation starters": 3, "first date": 3, "date night": 3, "sky": 2, "why is the sky": 3, "road trip": 3,
		"card game": 3, "uno": 3, "houseplants": 3, "plants": 2, "memorize": 2, "stage fright": 3, "tips": 1, "ideas": 1.5,
		"hobby": 2.5, "hobbies": 2.5, "weekend": 1.5, "vacation": 3, "holiday": 1.5, "travel": 2.5, "trip": 2.5, "restaurant": 2.5,
		"cook": 2.5, "cooking": 3, "bake": 2.5, "baking": 2.5, "dinner": 2, "lunch": 2, "breakfast": 1, "snack": 2.5, "dessert": 3,
		"ingredients": 3, "vegetarian": 2, "vegan": 2, "coffee": 2, "tea": 1.5, "wine": 1.5, "music": 1.5, "playlist": 3, "song": 0.5,
		"movie": 2.5, "film": 1.5, "tv show": 3, "series to watch": 3, "video game": 3, "games": 2, "game": 1.5, "sports": 2.5,
		"team": 0.5, "soccer": 2.5, "basketball": 2.5, "tennis": 2.5, "running": 1.5, "exercise": 2.5, "yoga": 3, "fitness": 2.5,
		"dog": 2, "dogs": 2, "cat": 1.5, "pet": 2, "pets": 2, "bird": 1.5, "fish": 1, "garden": 2, "gardening": 3, "flowers": 2.5,
		"weather": 2.5, "moon": 2, "planet": 2, "planets": 2, "stars": 1.5, "space": 1, "dinosaur": 3, "dinosaurs": 3, "history of": 0.5,
		"trivia": 3, "puzzle": 3, "joke": 3, "jokes": 3, "pun": 3, "fun": 1.5, "cleaning": 2.5, "laundry": 3, "decorate": 3,
		"decorating": 3, "furniture": 2.5, "diy": 3, "craft": 2, "knitting": 3, "how do you play": 3, "rules of": 1.5, "learn": 1,
		"recipe": 3, "itinerary": 3, "names for": 2.5, "name for": 2.5, "gift": 2.5, "translate": 2.5,
		"fun fact": 3, "solve for": 3, "capital of": 3, "board games": 3, "riddle": 3, "rainbows": 3,
		"brainstorm": 1.5, "party": 2, "chess": 3, "workout": 3, "boil": 3, "cleaning schedule": 3,
		"movies": 2.5, "packing list": 3, "hiking": 2.5, "quiz": 3, "puppy": 3, "science fair": 3,
		"crocodile": 3, "sleep routine": 3, "menu": 2, "picnic": 3, "stain": 3, "crossword": 3,
		"backpack": 2, "anniversary": 2.5, "offside": 3, "football": 2, "heavier": 2, "explain how": 0.5,
	},
}

// The classifier sits on the proxy's per-request path and prompts run to
// many kilobytes, so it makes a few linear passes over the text and runs
// no regular expressions: the shapes that were regular expressions (the
// form features, forms.go, and the claims, claims.go) keep their patterns
// as their definition and are matched by hand-written equivalents, which
// classify_diff_test.go checks against the patterns and against the
// regexp-based classifier they replaced (classify_ref_test.go). Scores are
// tallied in arrays indexed like TaskTypes; every weight is a multiple of
// 0.5, so sums are exact and do not depend on the order of addition.

// numTypes is len(TaskTypes).
const numTypes = 8

// tally holds one score per task type, indexed like TaskTypes.
type tally [numTypes]float64

var (
	typeIndex = indexTypes()
	otherIdx  = typeIndex[TypeOther]
	typeRisk  = func() (r [numTypes]Risk) {
		for i, t := range TaskTypes {
			r[i] = intrinsicRisk[t]
		}
		return r
	}()
)

func indexTypes() map[string]int {
	if len(TaskTypes) != numTypes {
		panic("policy: numTypes is not len(TaskTypes)")
	}
	m := make(map[string]int, numTypes)
	for i, t := range TaskTypes {
		m[t] = i
	}
	return m
}

// toMap is the exported form of a tally.
func (t *tally) toMap() map[string]float64 {
	m := make(map[string]float64, numTypes)
	for i, s := range t {
		m[TaskTypes[i]] = s
	}
	return m
}

type entry struct {
	typ int // index into TaskTypes
	w   float64
}

// phrase is a key of the phrase index: a lexicon entry, the start of a
// longer one (up to a space), or both.
type phrase struct {
	id      int     // the entry's bit in a scan's seen set; -1 if it is only a start
	prefix  bool    // a longer entry starts with this key and a space
	entries []entry // the weights per type, by type
}

const (
	maxPhraseWords = 4
	// maxPhrases and maxPhraseLen size a scan's fixed buffers.
	maxPhrases   = 4096
	maxPhraseLen = 64
)

var phrases, oneWordKeys = buildPhrases()

// buildPhrases indexes the lexicon by entry and by the starts of its
// multi-word entries, so that the scan stops extending an n-gram as soon
// as no entry can begin with it; and it fills a Bloom filter of the keys
// of one word, which most tokens fail without a map lookup.
func buildPhrases() (map[string]*phrase, *bloom) {
	m := map[string]*phrase{}
	get := func(p string) *phrase {
		ph := m[p]
		if ph == nil {
			ph = &phrase{id: -1}
			m[p] = ph
		}
		return ph
	}
	var keys []string
	for typ, lex := range lexicon {
		for p, w := range lex {
			if len(p) > maxPhraseLen {
				panic("policy: lexicon entry longer than maxPhraseLen: " + p)
			}
			ph := get(p)
			if ph.entries == nil {
				keys = append(keys, p)
			}
			ph.entries = append(ph.entries, entry{typeIndex[typ], w})
		}
	}
	if len(keys) > maxPhrases {
		panic("policy: the lexicon has more entries than maxPhrases")
	}
	sort.Strings(keys)
	for id, p := range keys {
		ph := m[p]
		ph.id = id
		sort.Slice(ph.entries, func(i, j int) bool { return ph.entries[i].typ < ph.entries[j].typ })
		for i := range len(p) {
			if p[i] == ' ' {
				get(p[:i]).prefix = true
			}
		}
	}
	var one bloom
	for p := range m {
		if !strings.Contains(p, " ") {
			one.add(p)
		}
	}
	return m, &one
}

// bloom is a Bloom filter of words keyed by their first and last bytes and
// their length, which are cheap to read; 1 100 one-word keys set about a twentieth of
// its bits.
type bloom [1 << 14 / 64]uint64

func bloomBit(w string) uint32 {
	return (uint32(w[0]) | uint32(w[len(w)-1])<<8 | uint32(len(w))<<16) * 0x9e3779b1 >> (32 - 14)
}

func (b *bloom) add(w string) { h := bloomBit(w); b[h/64] |= 1 << (h % 64) }

// mayHave reports whether w may have been added; w is not empty.
func (b *bloom) mayHave(w string) bool { h := bloomBit(w); return b[h/64]&(1<<(h%64)) != 0 }

// punctuated are entries that carry punctuation the tokens trim; they count
// wherever they occur.
var punctuated = []string{"document:", "order #"}

// Token byte classes: tokens are
// [a-z0-9][a-z0-9+#'’./:-]*[a-z0-9+#:]|[a-z0-9#], which keeps characters
// that carry meaning inside words (c++, node.js, icd-10, order #), leftmost
// first and as long as possible, then trimmed of trailing ".:".
const (
	tokStart = 1 << iota // [a-z0-9]
	tokEnd               // [a-z0-9+#:]
	tokMid               // [a-z0-9+#'./:-], and ’ (not a byte)
)

var tokClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = tokStart | tokEnd | tokMid
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = tokStart | tokEnd | tokMid
	}
	for _, c := range "+#:" {
		t[c] = tokEnd | tokMid
	}
	for _, c := range "'./-" {
		t[c] = tokMid
	}
	return t
}()

// scanner tallies one text's lexicon matches.
type scanner struct {
	raw   tally
	found [maxPhrases / 64]uint64 // the entries counted so far, by id
	win   [maxPhraseWords]string  // the latest tokens, by token number mod maxPhraseWords
	buf   [maxPhraseLen]byte
}

// Classify scores text against every task type. It returns the best type,
// the confidence (the margin between the best two normalised scores, 0–1)
// and every type's normalised score.
//
// Self-descriptions (see Claims) may neither add nor hide evidence: the
// high-risk types are scored on the whole text, so a claim cannot swallow
// the sentence that makes a prompt medical; every other type is scored on
// the text without its claims, so "a harmless creative writing task"
// earns writing nothing. Appending or prepending a claim therefore never
// raises a lower-risk type's score nor lowers a high-risk one's.
func Classify(text string) (string, float64, map[string]float64) {
	lc := strings.ToLower(text)
	var buf [4][2]int
	best, conf, scores := classify(text, lc, claims(text, lc, buf[:0]))
	return TaskTypes[best], conf, scores.toMap()
}

// classify is Classify given text lower-cased and its claims.
func classify(text, lc string, spans [][2]int) (int, float64, tally) {
	full := rawScores(lc)
	if len(spans) == 0 { // most texts make no claim about themselves
		return normalise(&full)
	}
	// Lower-casing commutes with replacing spans by spaces when it keeps
	// every byte where it is, as for ASCII.
	var stripped tally
	if isASCII(text) {
		stripped = rawScores(replaceSpans(lc, spans))
	} else {
		stripped = rawScores(strings.ToLower(replaceSpans(text, spans)))
	}
	var raw tally
	for i := range raw {
		if typeRisk[i] == RiskHigh {
			raw[i] = full[i]
		} else {
			raw[i] = min(stripped[i], full[i])
		}
	}
	return normalise(&raw)
}

func isASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if (uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56)&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// replaceSpans replaces each span of text by a space.
func replaceSpans(text string, spans [][2]int) string {
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, sp := range spans {
		b.WriteString(text[last:sp[0]])
		b.WriteByte(' ')
		last = sp[1]
	}
	b.WriteString(text[last:])
	return b.String()
}

// rawScores sums the lexicon and form weights found in lower-cased text.
func rawScores(lc string) tally {
	var s scanner
	s.raw[otherIdx] = otherPrior
	s.scan(lc)
	for _, p := range punctuated {
		if ph := phrases[p]; !s.seen(ph.id) && strings.Contains(lc, p) {
			s.count(ph.entries)
		}
	}
	for _, f := range formFeatures {
		if f.match(lc) && (f.guard == nil || f.guard(lc)) {
			s.raw[f.typ] += f.w
		}
	}
	return s.raw
}

// scan tokenises lc and looks up each token's n-grams of up to
// maxPhraseWords tokens, in token order, as soon as they are complete.
func (s *scanner) scan(lc string) {
	n := 0 // tokens so far
	for i := 0; ; {
		var tok string
		if tok, i = nextToken(lc, i); tok == "" {
			break
		}
		s.win[n%maxPhraseWords] = tok
		n++
		if n >= maxPhraseWords {
			s.ngrams(n-maxPhraseWords, n)
		}
	}
	for i := max(n-maxPhraseWords+1, 0); i < n; i++ {
		s.ngrams(i, n)
	}
}

// nextToken returns the first token of lc at or after i, trimmed, and
// where the search for the next one resumes; "" when there is none.
func nextToken(lc string, i int) (string, int) {
	for ; i < len(lc); i++ {
		c := lc[i]
		if c == '#' {
			return "#", i + 1
		}
		if tokClass[c]&tokStart == 0 {
			continue
		}
		// Run through [a-z0-9+#'’./:-]* and back off to the last
		// [a-z0-9+#:]; without one the token is the first byte.
		end := i + 1
		for j := i + 1; j < len(lc); {
			switch d := lc[j]; {
			case tokClass[d]&tokEnd != 0:
				j++
				end = j
				continue
			case tokClass[d]&tokMid != 0:
				j++
				continue
			case d == 0xe2 && strings.HasPrefix(lc[j:], "’"):
				j += len("’")
				continue
			}
			break
		}
		tok := lc[i:end]
		for tok[len(tok)-1] == '.' || tok[len(tok)-1] == ':' {
			tok = tok[:len(tok)-1]
		}
		return tok, end
	}
	return "", len(lc)
}

// ngrams counts the entries among the n-grams starting at token i, of the
// n tokens so far.
func (s *scanner) ngrams(i, n int) {
	t := s.win[i%maxPhraseWords]
	if !oneWordKeys.mayHave(t) {
		return
	}
	ph, ok := phrases[t]
	if !ok {
		return
	}
	s.add(ph)
	b := append(s.buf[:0], t...)
	for k := 1; ph.prefix && k < maxPhraseWords && i+k < n; k++ {
		next := s.win[(i+k)%maxPhraseWords]
		if len(b)+1+len(next) > maxPhraseLen {
			return // longer than any entry
		}
		b = append(b, ' ')
		b = append(b, next...)
		if ph, ok = phrases[string(b)]; !ok {
			return
		}
		s.add(ph)
	}
}

// add counts an entry the first time the text contains it.
func (s *scanner) add(ph *phrase) {
	if ph.id < 0 || s.seen(ph.id) {
		return
	}
	s.found[ph.id/64] |= 1 << (ph.id % 64)
	s.count(ph.entries)
}

func (s *scanner) seen(id int) bool { return s.found[id/64]&(1<<(id%64)) != 0 }

func (s *scanner) count(es []entry) {
	for _, e := range es {
		s.raw[e.typ] += e.w
	}
}

// normalise turns raw scores into shares and ranks them; raw always holds
// other's prior. It returns the best type's index.
func normalise(raw *tally) (int, float64, tally) {
	var sum float64
	for _, s := range raw {
		sum += s
	}
	var scores tally
	for i, s := range raw {
		scores[i] = s / sum
	}
	if sum == otherPrior {
		// Nothing matched: other by default, but with no confidence, so
		// that callers can tell "clearly other" from "no idea".
		return otherIdx, 0, scores
	}
	// On a tie the riskier type ranks first: a tie is the least sure case;
	// on a tie of both, TaskTypes order decides.
	better := func(i, j int) bool {
		if scores[i] != scores[j] {
			return scores[i] > scores[j]
		}
		return typeRisk[i] > typeRisk[j]
	}
	first, second := 0, 1
	if better(1, 0) {
		first, second = 1, 0
	}
	for i := 2; i < numTypes; i++ {
		switch {
		case better(i, first):
			first, second = i, first
		case better(i, second):
			second = i
		}
	}
	return first, scores[first] - scores[second], scores
}
