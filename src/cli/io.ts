// What every `ferry <process>` gets from the command line: where to write and the parsed options.
type Out = (line: string) => void;

export interface CliIO {
  out: Out;
  err: Out;
}

export const stdio: CliIO = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

export interface ProcessOptions {
  configPath: string;
  args: string[];
  noInfra: boolean;
  /** `--chat slack|matrix|slack,matrix`: the chat platforms of `bot` and `start` (default slack). */
  chat?: string;
}
